"""``/v1/auth/token/``: Vault's token auth over keysafe's tokens.

A keysafe token's id is its Vault accessor. Tokens are never renewable (``renew-self``
answers the remaining TTL with a warning, as Vault does at a token's maximum TTL), and
never orphans: a child always follows its creator (``keysafe.access.lineage``), so
``no_parent`` and ``num_uses``, which keysafe cannot honour, are refused.
"""

from __future__ import annotations

import time
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from keysafe.access.models import MODE_POLICY, Principal, RequestContext
from keysafe.errors import InvalidInput, NotFound
from keysafe.server import deps
from keysafe.server.params import Counter
from keysafe.server.replies.vault import TokenAuthReply, TokenLookup
from keysafe.server.vaultreply import Duration, envelope, seconds
from keysafe.store.engine import read_conn
from keysafe.timefmt import iso_us, parse_iso_us

router = APIRouter(prefix="/v1/auth/token", tags=["vault-compatible"])
_AUTH = [Depends(deps.authenticated)]
_CORE_KINDS = ("root", "scoped")


class TokenCreate(BaseModel):
    policies: list[str] | None = Field(None, max_length=64)
    ttl: Duration | None = None
    explicit_max_ttl: Duration | None = None
    display_name: str = Field("", max_length=1024)
    num_uses: Counter = 0
    no_parent: bool = False
    period: Duration | None = None
    renewable: bool | None = None
    meta: dict[str, str] | None = None


class TokenRef(BaseModel):
    token: str = Field(max_length=4096)


class AccessorRef(BaseModel):
    accessor: str = Field(max_length=128)


def _policies(p: Principal) -> list[str]:
    if p.is_root:
        return ["root"]
    return list(p.policies) if p.policies or p.mode == MODE_POLICY else [f"{p.mode}:{p.prefix}"]


def _token_data(p: Principal, presented: str | None, created_us: int | None) -> dict[str, Any]:
    """Vault's lookup answer for ``p`` (``ttl`` 0: never expires)."""
    now_us = int(time.time() * 1_000_000)
    ttl = 0 if p.expires_at is None else max(0, (p.expires_at - now_us) // 1_000_000)
    creation_ttl = (
        0 if p.expires_at is None or created_us is None else (p.expires_at - created_us) // 10**6
    )
    return {
        "accessor": p.token_id,
        "creation_time": (created_us or now_us) // 1_000_000,
        "creation_ttl": creation_ttl,
        "display_name": f"token-{p.token_id}" if p.kind in _CORE_KINDS else p.token_id,
        "entity_id": "",
        "expire_time": iso_us(p.expires_at),
        "explicit_max_ttl": 0,
        "id": presented or p.token_id,
        "issue_time": iso_us(created_us),
        "meta": None,
        "num_uses": 0,
        "orphan": p.is_root,
        "path": "auth/token/create" if p.kind in _CORE_KINDS else "auth/approle/login",
        "policies": _policies(p),
        "renewable": False,
        "ttl": ttl,
        "type": "service",
    }


async def _created_us(request: Request, p: Principal) -> int | None:
    if p.kind not in _CORE_KINDS:
        return None
    svc = deps.services(request)
    record = await anyio.to_thread.run_sync(svc.tokens.get, p.token_id)
    return parse_iso_us(record["created_at"]) if record["created_at"] else None


@router.get("/lookup-self", dependencies=_AUTH, responses={200: {"model": TokenLookup}})
@router.post("/lookup-self", include_in_schema=False, dependencies=_AUTH)
async def lookup_self(request: Request) -> Response:
    ctx = await deps.context(request)
    created = await _created_us(request, ctx.principal)
    return envelope(request, _token_data(ctx.principal, deps.bearer_token(request), created))


@router.post("/lookup", dependencies=_AUTH, responses={200: {"model": TokenLookup}})
@router.put("/lookup", include_in_schema=False, dependencies=_AUTH)
async def lookup(request: Request, body: TokenRef) -> Response:
    """Another token's details: needs the right to list tokens (or it is the caller's)."""
    if body.token == deps.bearer_token(request):
        return await lookup_self(request)
    await deps.needs_context(request, "token:list")
    svc = deps.services(request)

    def find() -> dict[str, Any] | None:
        with read_conn(svc.engine) as conn:
            return svc.tokens.find(body.token, conn)

    record = await anyio.to_thread.run_sync(find)
    if record is None or record["revoked_at"] is not None:
        # Vault says 403 here; keysafe keeps 403 for refusals of the caller.
        raise InvalidInput("bad token")
    return envelope(request, _record_data(record))


def _record_data(record: dict[str, Any]) -> dict[str, Any]:
    policies = record["policies"].split(",") if record.get("policies") else []
    p = Principal(
        record["id"],
        record["kind"],
        record["mode"],
        record["prefix"],
        record["expires_at"],
        policies=tuple(policies),
    )
    return _token_data(p, None, record["created_at"])


@router.post(
    "/lookup-accessor",
    dependencies=[Depends(deps.needs("token:list"))],
    responses={200: {"model": TokenLookup}},
)
@router.put(
    "/lookup-accessor", include_in_schema=False, dependencies=[Depends(deps.needs("token:list"))]
)
async def lookup_accessor(request: Request, body: AccessorRef) -> Response:
    await deps.needs_context(request, "token:list")
    svc = deps.services(request)
    record = await anyio.to_thread.run_sync(svc.tokens.get, body.accessor)
    raw = {
        **record,
        "policies": ",".join(record["policies"]),
        "created_at": parse_iso_us(record["created_at"]),
        "expires_at": parse_iso_us(record["expires_at"]) if record["expires_at"] else None,
    }
    if record["revoked"]:
        raise NotFound("invalid accessor")
    return envelope(request, {**_record_data(raw), "id": ""})


@router.post(
    "/create",
    dependencies=[Depends(deps.needs("token:create"))],
    responses={200: {"model": TokenAuthReply}},
)
@router.put("/create", include_in_schema=False, dependencies=[Depends(deps.needs("token:create"))])
async def create(request: Request, body: TokenCreate) -> Response:
    """A child token bound to policies the caller holds (its own by default), expiring
    no later than the caller."""
    ctx = await deps.needs_context(request, "token:create")
    if body.num_uses:
        raise InvalidInput("num_uses is not supported: keysafe tokens are not use-limited")
    if body.no_parent:
        raise InvalidInput("orphan tokens are not supported: a token follows its creator")
    if body.period is not None and seconds(body.period, "period"):
        raise InvalidInput("periodic tokens are not supported")
    ttl = None if body.ttl is None else seconds(body.ttl, "ttl") or None
    if body.explicit_max_ttl is not None and (cap := seconds(body.explicit_max_ttl, "max")):
        ttl = min(ttl or cap, cap)
    policies = [p for p in (body.policies or []) if p != "default"] or list(ctx.principal.policies)
    if not policies:
        raise InvalidInput("policies: name the keysafe policies the token is bound to")
    svc = deps.services(request)
    issued = await deps.audited_change(
        request,
        "token:create",
        "",
        lambda conn: svc.tokens.mint(
            ctx.principal, "", "read", ttl, body.display_name, conn, policies=policies
        ),
        lambda issued: f"{issued.record['id']} policies {','.join(sorted(set(policies)))}",
    )
    return envelope(request, None, auth=_auth_block(issued.token, issued.record))


def _auth_block(token: str, record: dict[str, Any]) -> dict[str, Any]:
    expires = record["expires_at"]
    lease = 0 if not expires else max(0, (parse_iso_us(expires) // 10**6) - int(time.time()))
    return {
        "client_token": token,
        "accessor": record["id"],
        "policies": record["policies"],
        "token_policies": record["policies"],
        "identity_policies": None,
        "metadata": None,
        "lease_duration": lease,
        "renewable": False,
        "entity_id": "",
        "token_type": "service",
        "orphan": False,
        "num_uses": 0,
    }


@router.post("/renew-self", dependencies=_AUTH, responses={200: {"model": TokenAuthReply}})
@router.put("/renew-self", include_in_schema=False, dependencies=_AUTH)
async def renew_self(request: Request) -> Response:
    """Tokens are not renewable: the answer keeps the current TTL and says so."""
    ctx = await deps.context(request)
    p = ctx.principal
    data = _token_data(p, None, None)
    auth = {
        "client_token": deps.bearer_token(request),
        "accessor": p.token_id,
        "policies": _policies(p),
        "token_policies": _policies(p),
        "metadata": None,
        "lease_duration": data["ttl"],
        "renewable": False,
        "entity_id": "",
        "token_type": "service",
        "orphan": p.is_root,
        "num_uses": 0,
    }
    warning = "TTL not extended: keysafe tokens are not renewable; log in again before expiry"
    return envelope(request, None, auth=auth, warnings=[warning])


@router.post("/revoke-self", status_code=204, dependencies=_AUTH)
@router.put("/revoke-self", include_in_schema=False, dependencies=_AUTH)
async def revoke_self(request: Request) -> Response:
    """Revoke the presented token (and so every token it minted)."""
    ctx = await deps.context(request)
    presented = deps.bearer_token(request) or ""
    svc = deps.services(request)
    if presented.count(".") == 2:  # an access token from AppRole login / OAuth
        await anyio.to_thread.run_sync(svc.oauth.revoke, presented)
        await _record(request, ctx, "oauth:revoke", "ok")
    elif ctx.principal.kind == "scoped":
        await deps.audited_change(
            request,
            "token:revoke",
            "",
            lambda conn: svc.tokens.revoke(ctx.principal.token_id, conn),
            lambda _: ctx.principal.token_id,
        )
    else:
        raise InvalidInput(
            "only tokens are revoked here: revoke an API key with `keysafe key revoke`,"
            " end a session with a logout; the root token is not revoked this way"
        )
    return Response(status_code=204)


async def _record(request: Request, ctx: RequestContext, operation: str, outcome: str) -> None:
    await deps.record_as(
        deps.services(request),
        ctx,
        operation,
        outcome=outcome,
    )


@router.post(
    "/revoke-accessor", status_code=204, dependencies=[Depends(deps.needs("token:revoke"))]
)
@router.put(
    "/revoke-accessor",
    include_in_schema=False,
    status_code=204,
    dependencies=[Depends(deps.needs("token:revoke"))],
)
async def revoke_accessor(request: Request, body: AccessorRef) -> Response:
    await deps.needs_context(request, "token:revoke")
    svc = deps.services(request)
    await deps.audited_change(
        request,
        "token:revoke",
        "",
        lambda conn: svc.tokens.revoke(body.accessor, conn),
        lambda _: body.accessor,
    )
    return Response(status_code=204)
