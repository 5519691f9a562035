"""``/v1``: Vault's HTTP API for what keysafe does, so that Vault clients (the vault
CLI, Vault Agent, External Secrets Operator, hvac, node-vault) work unchanged.

This module: ``sys/`` and AppRole login. KV v2 (``secret/``) is in ``vault_kv``, token
auth in ``vault_token``; anything else answers 404 ``{"errors": []}`` as Vault answers
an unknown path.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from keysafe import __version__
from keysafe.errors import InvalidInput, Unauthenticated
from keysafe.server import deps
from keysafe.server.health import health_checks
from keysafe.server.replies.vault import InitStatus, Leader, Mounts, TokenAuthReply, UiMount
from keysafe.server.routes.oauth import exchange_key
from keysafe.server.routes.sys import json_response
from keysafe.server.vaultreply import envelope, not_found

router = APIRouter(prefix="/v1", tags=["vault-compatible"])


class VaultSealStatus(BaseModel):
    type: str
    recovery_seal: bool = False
    initialized: bool
    sealed: bool
    t: int | None
    n: int | None
    progress: int
    version: str


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
            "nonce": "",
            "version": f"keysafe-{__version__}",
            "build_date": "",
            "migration": False,
            "storage_type": "keysafe",
            "cluster_name": "keysafe",
            "cluster_id": "",
        }
    )


class AppRoleLogin(BaseModel):
    role_id: str = Field(max_length=64)
    secret_id: str = Field(max_length=256)


@router.post(
    "/auth/approle/login",
    dependencies=[Depends(deps.anonymous_route("approle"))],
    responses={200: {"model": TokenAuthReply}},
)
@router.put(
    "/auth/approle/login",
    include_in_schema=False,
    dependencies=[Depends(deps.anonymous_route("approle"))],
)
async def approle_login(request: Request, body: AppRoleLogin) -> Response:
    """AppRole-style login for Vault clients: ``role_id`` is an API key's id and
    ``secret_id`` the key itself; the reply's ``client_token`` is a short-lived access
    token (as from ``/api/v1/oauth/token``), so the long-lived key never travels twice."""
    try:
        ctx, reply = await exchange_key(
            request,
            body.secret_id,
            body.role_id,
            900,
            operation="auth:approle",
            fields=("secret_id", "role_id"),
        )
    except Unauthenticated as exc:
        # Vault answers a failed login 400 (a bad token elsewhere is 403); audited above.
        raise InvalidInput(exc.detail) from None
    policies = list(ctx.principal.policies)
    auth = {
        "client_token": reply["access_token"],
        "accessor": "",
        "policies": policies,
        "token_policies": policies,
        "identity_policies": None,
        "metadata": {"role_name": body.role_id},
        "lease_duration": reply["expires_in"],
        "renewable": False,
        "entity_id": "",
        "token_type": "service",
        "orphan": True,
        "num_uses": 0,
    }
    return envelope(request, None, auth=auth)


# -- mounts: one KV v2 engine at secret/ ---------------------------------------------

_KV_MOUNT = {
    "type": "kv",
    "description": "keysafe secrets (KV version 2)",
    "accessor": "kv_keysafe",
    "config": {"default_lease_ttl": 0, "max_lease_ttl": 0, "force_no_cache": False},
    "options": {"version": "2"},
    "local": False,
    "seal_wrap": False,
    "external_entropy_access": False,
    "plugin_version": "",
    "running_plugin_version": "",
    "uuid": "",
}


@router.get(
    "/sys/mounts",
    dependencies=[Depends(deps.needs("sys:mounts"))],
    responses={200: {"model": Mounts}},
)
async def mounts(request: Request) -> Response:
    """The mount table: KV v2 at ``secret/`` (Vault lists mounts at the top level and
    under ``data``). Needs ``admin`` on ``sys/mounts``, as Vault needs a policy on it;
    any token may ask ``sys/internal/ui/mounts``."""
    await deps.needs_context(request, "sys:mounts")
    table = {"secret/": _KV_MOUNT}
    reply = envelope(request, table)
    doc = {**orjson.loads(reply.body), **table}
    return json_response(doc)


@router.get(
    "/sys/internal/ui/mounts/{path:path}",
    dependencies=[Depends(deps.authenticated)],
    responses={200: {"model": UiMount}},
)
async def ui_mount(request: Request, path: str) -> Response:
    """The vault CLI's KV version check (``vault kv get`` asks before reading)."""
    if path.strip("/").split("/", 1)[0] != "secret":
        return not_found()
    return envelope(request, {**_KV_MOUNT, "path": "secret/"})


@router.get("/sys/init", responses={200: {"model": InitStatus}})
async def init_status(request: Request) -> Response:
    status = deps.services(request).system.status()
    return json_response({"initialized": bool(status["initialized"])})


@router.get("/sys/leader", responses={200: {"model": Leader}})
async def leader(request: Request) -> Response:
    """Every keysafe node is active: no HA leader election to report."""
    return json_response(
        {
            "ha_enabled": False,
            "is_self": True,
            "active_time": "0001-01-01T00:00:00Z",
            "leader_address": "",
            "leader_cluster_address": "",
            "performance_standby": False,
            "performance_standby_last_remote_wal": 0,
        }
    )
