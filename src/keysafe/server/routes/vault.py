"""``/v1``: the Vault-compatible subset, so clients such as ``hvac`` work unchanged.

KV v2 is mounted at ``secret/``. A KV v2 value is a JSON object; keysafe stores it as
one secret whose value is the object's JSON text (a plain keysafe value reads back as
``{"value": "..."}``).
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from keysafe import __version__
from keysafe.errors import InvalidInput
from keysafe.server import deps
from keysafe.server.health import health_checks
from keysafe.server.params import VersionQuery
from keysafe.server.replies.exchange import KvMetadata
from keysafe.server.routes.oauth import exchange_key
from keysafe.server.routes.sys import json_response
from keysafe.timefmt import iso_us

router = APIRouter(prefix="/v1", tags=["vault-compatible"])


class KvWrite(BaseModel):
    data: dict[str, Any]
    options: dict[str, Any] = {}


class KvVersion(BaseModel):
    created_time: str | None
    version: int
    deletion_time: str
    destroyed: bool


class KvVersionMetadata(KvVersion):
    custom_metadata: dict[str, str] | None


class KvData(BaseModel):
    data: dict[str, Any]
    metadata: KvVersionMetadata


class KvReadReply(BaseModel):
    """Vault's KV v2 read answer."""

    data: KvData


class KvWriteReply(BaseModel):
    data: KvVersion


class TokenInfo(BaseModel):
    accessor: str
    id: str
    policies: list[str]
    expire_time: str | None
    renewable: bool


class LookupSelfReply(BaseModel):
    data: TokenInfo


class LoginAuth(BaseModel):
    client_token: str
    accessor: str
    policies: list[str]
    token_policies: list[str]
    lease_duration: int
    renewable: bool


class LoginReply(BaseModel):
    auth: LoginAuth


class VaultSealStatus(BaseModel):
    type: str
    recovery_seal: bool = False
    initialized: bool
    sealed: bool
    t: int | None
    n: int | None
    progress: int
    version: str


def _as_object(value: str) -> dict[str, Any]:
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return {"value": value}
    return doc if isinstance(doc, dict) else {"value": value}


class VaultHealth(BaseModel):
    initialized: bool
    sealed: bool
    standby: bool
    version: str
    cluster_name: str


# Vault's sys/health status parameters and their defaults. Every keysafe node is active
# (no standbys), so the standby codes never apply; they are still validated.
_HEALTH_CODES = {
    "activecode": 200,
    "standbycode": 429,
    "drsecondarycode": 472,
    "performancestandbycode": 473,
    "haunhealthycode": 474,
    "removedcode": 530,
    "sealedcode": 503,
    "uninitcode": 501,
}


def _health_codes(request: Request) -> dict[str, int]:
    codes = dict(_HEALTH_CODES)
    for name in codes:
        raw = request.query_params.get(name)
        if raw is None:
            continue
        try:
            code = int(raw)
        except ValueError:
            raise InvalidInput(f"{name}: must be an HTTP status code") from None
        if not 100 <= code <= 599:
            raise InvalidInput(f"{name}: must be an HTTP status code")
        codes[name] = code
    return codes


@router.get(
    "/sys/health",
    responses={
        200: {"model": VaultHealth},
        501: {"model": VaultHealth, "description": "Not initialised"},
        503: {"model": VaultHealth, "description": "Sealed, or unable to serve"},
    },
)
async def health(request: Request) -> Response:
    """Vault's health codes (``?sealedcode=``, ``uninitcode``, ``activecode`` ...;
    ``standbyok``/``perfstandbyok`` accepted: no node is a standby). Unsealed but unable
    to serve (database, audit trail): 503 with the reason, whatever the parameters."""
    codes = _health_codes(request)
    report = await health_checks(request).report()
    doc: dict[str, Any] = {
        "initialized": bool(report.initialized),
        "sealed": report.sealed,
        "standby": False,
        "performance_standby": False,
        "replication_performance_mode": "disabled",
        "replication_dr_mode": "disabled",
        "server_time_utc": int(time.time()),
        "version": f"keysafe-{__version__}",
        "cluster_name": "keysafe",
    }
    if report.initialized is False:
        status = codes["uninitcode"]
    elif report.sealed:
        status = codes["sealedcode"]
    elif not report.healthy:
        status = 503
    else:
        status = codes["activecode"]
    if not report.healthy:
        doc["reason"] = report.reason()
    return json_response(doc, status)


@router.head("/sys/health", responses={200: {"description": "Healthy (no body)"}})
async def health_head(request: Request) -> Response:
    """The same answer as GET, for probes that send HEAD (the server drops the body)."""
    return await health(request)


@router.get("/sys/seal-status", responses={200: {"model": VaultSealStatus}})
async def seal_status(request: Request) -> Response:
    status = deps.services(request).system.status()
    return json_response(
        {
            # Vault names the seal by what unseals it; recovery shares with a source.
            "type": status["unseal_mode"] if status["recovery"] else "shamir",
            "recovery_seal": status["recovery"],
            "initialized": status["initialized"],
            "sealed": status["sealed"],
            "t": status["threshold"],
            "n": status["shares"],
            "progress": status["progress"],
            "version": f"keysafe-{__version__}",
        }
    )


@router.get(
    "/auth/token/lookup-self",
    dependencies=[Depends(deps.authenticated)],
    responses={200: {"model": LookupSelfReply}},
)
async def lookup_self(request: Request) -> Response:
    ctx = await deps.context(request)
    p = ctx.principal
    return json_response(
        {
            "data": {
                "accessor": p.token_id,
                "id": p.token_id,
                "policies": ["root"] if p.is_root else list(p.policies) or [f"{p.mode}:{p.prefix}"],
                "expire_time": iso_us(p.expires_at),
                "renewable": False,
            }
        }
    )


class AppRoleLogin(BaseModel):
    role_id: str = Field(max_length=64)
    secret_id: str = Field(max_length=256)


@router.post(
    "/auth/approle/login",
    dependencies=[Depends(deps.anonymous_route("approle"))],
    responses={200: {"model": LoginReply}},
)
async def approle_login(request: Request, body: AppRoleLogin) -> Response:
    """AppRole-style login for Vault clients: ``role_id`` is an API key's id and
    ``secret_id`` the key itself; the reply's ``client_token`` is a short-lived access
    token (as from ``/api/v1/oauth/token``), so the long-lived key never travels twice."""
    ctx, reply = await exchange_key(
        request,
        body.secret_id,
        body.role_id,
        900,
        operation="auth:approle",
        fields=("secret_id", "role_id"),
    )
    return json_response(
        {
            "auth": {
                "client_token": reply["access_token"],
                "accessor": "",
                "policies": list(ctx.principal.policies),
                "token_policies": list(ctx.principal.policies),
                "lease_duration": reply["expires_in"],
                "renewable": False,
            }
        }
    )


@router.get(
    "/secret/data/{path:path}",
    dependencies=[Depends(deps.authenticated)],
    responses={200: {"model": KvReadReply}},
)
async def kv_read(request: Request, path: str, version: VersionQuery = None) -> Response:
    ctx = await deps.context(request)
    value = await deps.services(request).secrets.read(ctx, path, version)
    meta = value.metadata
    return json_response(
        {
            "data": {
                "data": _as_object(value.value),
                "metadata": {
                    "created_time": meta["updated_at"],
                    "version": value.version,
                    "deletion_time": "",
                    "destroyed": False,
                    "custom_metadata": meta["tags"] or None,
                },
            }
        }
    )


@router.post(
    "/secret/data/{path:path}",
    operation_id="vault_kv_write",
    dependencies=[Depends(deps.authenticated)],
    responses={200: {"model": KvWriteReply}},
)
@router.put(
    "/secret/data/{path:path}",
    operation_id="vault_kv_write_put",
    include_in_schema=False,
    dependencies=[Depends(deps.authenticated)],
)
async def kv_write(request: Request, path: str, body: KvWrite) -> Response:
    ctx = await deps.context(request)
    cas = body.options.get("cas")
    if cas is not None and not isinstance(cas, int):
        raise InvalidInput("options.cas must be an integer")
    text = orjson.dumps(body.data, option=orjson.OPT_SORT_KEYS).decode()
    result = await deps.services(request).secrets.write(ctx, path, text, cas)
    return json_response(
        {
            "data": {
                "created_time": result.created_at,
                "version": result.version,
                "deletion_time": "",
                "destroyed": False,
            }
        }
    )


@router.delete(
    "/secret/data/{path:path}", status_code=204, dependencies=[Depends(deps.authenticated)]
)
async def kv_delete(request: Request, path: str) -> Response:
    ctx = await deps.context(request)
    await deps.services(request).secrets.delete(ctx, path, None)
    return Response(status_code=204)


@router.get(
    "/secret/metadata/{path:path}",
    operation_id="vault_kv_metadata",
    dependencies=[Depends(deps.authenticated)],
    responses={200: {"model": KvMetadata}},
)
@router.api_route(
    "/secret/metadata/{path:path}",
    methods=["LIST"],
    operation_id="vault_kv_list",
    include_in_schema=False,
    dependencies=[Depends(deps.authenticated)],
)
async def kv_list(request: Request, path: str = "") -> Response:
    """``LIST`` (or ``GET ?list=true``): the keys directly under a folder."""
    ctx = await deps.context(request)
    svc = deps.services(request).secrets
    if request.method == "GET" and request.query_params.get("list") != "true":
        meta = await svc.metadata(ctx, path)
        return json_response({"data": meta})
    prefix = path.strip("/") + "/" if path.strip("/") else ""
    items = await svc.list_paths(ctx, prefix, recursive=True)
    keys: list[str] = []
    for item in items:
        rest = item["path"][len(prefix) :]
        key = rest.split("/", 1)[0] + ("/" if "/" in rest else "")
        if key not in keys:
            keys.append(key)
    if not keys:
        return Response(
            orjson.dumps({"errors": []}), status_code=404, media_type="application/json"
        )
    return json_response({"data": {"keys": keys}})
