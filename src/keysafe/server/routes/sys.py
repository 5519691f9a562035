"""``/api/v1/sys``: health, seal state, init, unseal, seal, key rotation."""

from __future__ import annotations

import logging
from typing import Any

import anyio.to_thread
import orjson
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from keysafe import __version__
from keysafe.audit.models import OUTCOME_OK
from keysafe.errors import AlreadyInitialized, Unauthenticated
from keysafe.server import deps
from keysafe.server.health import health_checks
from keysafe.server.replies.tokens import MemberList, RootToken
from keysafe.system.init_token import INIT_TOKEN_HEADER, check_init_token, consume_init_token

router = APIRouter(prefix="/api/v1/sys", tags=["sys"])
log = logging.getLogger("keysafe.server")


# API answers may carry secrets (values, tokens, keys, shares): no cache may keep them.
NO_STORE = {"Cache-Control": "no-store"}


def json_response(doc: Any, status: int = 200) -> Response:
    """``doc`` as JSON, never cached (``Cache-Control: no-store``)."""
    return Response(
        orjson.dumps(doc), status_code=status, media_type="application/json", headers=NO_STORE
    )


class InitRequest(BaseModel):
    shares: int = Field(5, ge=1, le=16)
    threshold: int = Field(3, ge=1, le=16)
    # The server's one-time init token, when it has one (or the X-Keysafe-Init-Token header).
    init_token: str | None = Field(None, max_length=256)


class UnsealRequest(BaseModel):
    share: str | None = Field(None, max_length=4096)
    key: str | None = Field(None, max_length=4096)
    reset: bool = False
    # The running unseal attempt's nonce (returned with its first share).
    nonce: str | None = Field(None, max_length=64)


class GenerateRootRequest(BaseModel):
    shares: list[str] | None = Field(None, max_length=16)
    key: str | None = Field(None, max_length=4096)


class RewrapRequest(BaseModel):
    batch: int = Field(500, ge=1, le=10_000)


class SealStatus(BaseModel):
    initialized: bool
    sealed: bool
    threshold: int
    shares: int
    progress: int
    unseal_mode: str | None
    recovery: bool = Field(
        False, description="true when an unseal source unseals and the shares are recovery shares"
    )
    reason: str = Field("", description="why an auto-unseal has not happened yet")
    nonce: str | None = Field(
        None, description="the unseal attempt's nonce, only in answers to its share holders"
    )


class InitReply(BaseModel):
    """Shown once: the unseal shares (or key) and the root token."""

    shares: list[str]
    root_token: str
    recovery: bool = Field(False, description="the shares are recovery shares")


class UnsealMigrateRequest(BaseModel):
    to: str = Field(pattern="^(shamir|source)$")
    # A threshold of the current unseal shares (to a source) or recovery shares (to Shamir).
    shares: list[str] = Field(min_length=1, max_length=16)
    new_shares: int = Field(5, ge=1, le=16)
    new_threshold: int = Field(3, ge=1, le=16)


class UnsealMigrateReply(BaseModel):
    """Shown once: the new unseal shares (to Shamir) or recovery shares (to a source)."""

    shares: list[str]
    recovery: bool
    unseal_mode: str


class KeyringVersion(BaseModel):
    keyring_version: int


class RewrapReply(KeyringVersion):
    rewrapped: int
    remaining: int
    total: int


class Health(BaseModel):
    initialized: bool | None = Field(description="null when the database could not tell")
    sealed: bool
    healthy: bool
    checks: dict[str, str] = Field(description='each named check: "ok" or why it fails')
    reason: str = Field(description="why the node is not serving (empty when it is)")
    version: str


@router.get(
    "/health",
    responses={
        200: {"model": Health},
        503: {"model": Health, "description": "Sealed, not initialised or a check failing"},
    },
)
async def health(request: Request) -> Response:
    """What a load balancer trusts: 200 only when unsealed, the database answers and the
    audit trail can be written; else 503 with the reason (``keysafe.server.health``)."""
    report = await health_checks(request).report()
    doc = {**report.as_document(), "version": __version__}
    return json_response(doc, 200 if report.healthy else 503)


@router.head("/health", responses={200: {"description": "Healthy (no body)"}})
async def health_head(request: Request) -> Response:
    """The same answer as GET, for probes that send HEAD (the server drops the body)."""
    return await health(request)


@router.get("/seal-status", responses={200: {"model": SealStatus}})
async def seal_status(request: Request) -> Response:
    return json_response(deps.services(request).system.status())


@router.post(
    "/init",
    dependencies=[Depends(deps.anonymous_route("init"))],
    responses={200: {"model": InitReply}},
)
async def init(request: Request, body: InitRequest) -> Response:
    """Initialise the vault: the shares and the root token, once. A server started with
    an init token file first needs that one-time token (header or ``init_token``)."""
    svc = deps.services(request)
    token_file = svc.settings.init_token_file
    if token_file is not None and svc.system.seal_config() is not None:
        # Said before the token check: the used token's file is gone by now.
        raise AlreadyInitialized("the vault is already initialised")
    if token_file is not None:
        presented = request.headers.get(INIT_TOKEN_HEADER) or body.init_token
        try:
            await anyio.to_thread.run_sync(check_init_token, token_file, presented)
        except Unauthenticated:
            # No audit trail before init: the log and the failure throttle keep count.
            log.warning("init refused from %s: wrong or missing init token", deps.source(request))
            svc.throttle.failed(deps.source(request))
            raise
    result = await anyio.to_thread.run_sync(
        lambda: svc.system.initialize(body.shares, body.threshold)
    )
    if token_file is not None:
        await anyio.to_thread.run_sync(consume_init_token, token_file)
    return json_response(
        {"shares": result.shares, "root_token": result.root_token, "recovery": result.recovery}
    )


@router.post(
    "/unseal",
    dependencies=[Depends(deps.anonymous_route("unseal"))],
    responses={200: {"model": SealStatus}},
)
async def unseal(request: Request, body: UnsealRequest) -> Response:
    """Submit one share (or the unseal key). The first share starts an unseal attempt
    and the reply carries its ``nonce``; further shares and ``reset`` must present it
    (409 otherwise, and nothing changes)."""
    svc = deps.services(request)
    if body.reset:
        svc.barrier.reset_progress(body.nonce)
        return json_response({**svc.system.status(), "nonce": ""})
    status = await anyio.to_thread.run_sync(
        lambda: svc.system.unseal(body.share, body.key, body.nonce)
    )
    return json_response(status)


async def _audit_sys(request: Request, operation: str, detail: str = "") -> None:
    ctx = await deps.needs_context(request, operation)
    await deps.record_as(
        deps.services(request),
        ctx,
        operation,
        outcome=OUTCOME_OK,
        detail=detail,
    )


@router.post(
    "/seal",
    dependencies=[Depends(deps.needs("sys:seal"))],
    responses={200: {"model": SealStatus}},
)
async def seal(request: Request) -> Response:
    await _audit_sys(request, "sys:seal")
    svc = deps.services(request)
    return json_response(await anyio.to_thread.run_sync(svc.system.seal))


@router.post(
    "/rotate-key",
    dependencies=[Depends(deps.needs("sys:rotate-key"))],
    responses={200: {"model": KeyringVersion}},
)
async def rotate_key(request: Request) -> Response:
    await deps.needs_context(request, "sys:rotate-key")
    svc = deps.services(request)
    version = await anyio.to_thread.run_sync(svc.system.rotate_key)
    await _audit_sys(request, "sys:rotate-key", f"keyring version {version}")
    return json_response({"keyring_version": version})


@router.post(
    "/rewrap",
    dependencies=[Depends(deps.needs("sys:rewrap"))],
    responses={200: {"model": RewrapReply}},
)
async def rewrap(request: Request, body: RewrapRequest) -> Response:
    await deps.needs_context(request, "sys:rewrap")
    svc = deps.services(request)
    done, remaining, total = await anyio.to_thread.run_sync(
        lambda: svc.secrets.rewrap_batch(body.batch)
    )
    await _audit_sys(request, "sys:rewrap", f"{done} data keys re-wrapped")
    return json_response(
        {
            "rewrapped": done,
            "remaining": remaining,
            "total": total,
            "keyring_version": svc.barrier.keyring().current_version,
        }
    )


@router.get(
    "/members",
    dependencies=[Depends(deps.needs("sys:members"))],
    responses={200: {"model": MemberList}},
)
async def members(request: Request) -> Response:
    """The nodes of the cluster (``keysafe operator members``): id, address, version,
    seal state, last heartbeat, and ``up`` or ``down``."""
    svc = deps.services(request)
    found = await anyio.to_thread.run_sync(svc.nodes.members)
    await _audit_sys(request, "sys:members", f"{len(found)} nodes")
    return json_response({"members": [m.as_json() for m in found]})


@router.post(
    "/generate-root",
    dependencies=[Depends(deps.anonymous_route("generate-root"))],
    responses={200: {"model": RootToken}},
)
async def generate_root(request: Request, body: GenerateRootRequest) -> Response:
    """A new root token for holders of the unseal key or a threshold of shares."""
    svc = deps.services(request)
    token = await anyio.to_thread.run_sync(lambda: svc.system.generate_root(body.shares, body.key))
    await deps.record(
        svc,
        rid=deps.request_id(request),
        actor="unseal-material",
        src=deps.source(request),
        operation="sys:generate-root",
        outcome=OUTCOME_OK,
    )
    return json_response({"root_token": token})


@router.post(
    "/unseal-migrate",
    dependencies=[Depends(deps.needs("sys:unseal-migrate"))],
    responses={200: {"model": UnsealMigrateReply}},
)
async def unseal_migrate(request: Request, body: UnsealMigrateRequest) -> Response:
    """Move the vault between Shamir shares and the configured unseal source: needs an
    admin on ``sys/unseal-migrate`` and a threshold of the current (recovery) shares.
    Atomic: the vault is either fully moved or untouched."""
    from keysafe.system.migrate import migrate

    ctx = await deps.needs_context(request, "sys:unseal-migrate")
    svc = deps.services(request)
    result = await anyio.to_thread.run_sync(
        lambda: migrate(svc.system, body.to, body.shares, body.new_shares, body.new_threshold)
    )
    mode = str(svc.system.status()["unseal_mode"])
    await deps.record_as(
        svc,
        ctx,
        "sys:unseal-migrate",
        outcome=OUTCOME_OK,
        detail=f"now {mode}",
    )
    return json_response(
        {"shares": result.shares, "recovery": result.recovery, "unseal_mode": mode}
    )
