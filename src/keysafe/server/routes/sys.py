"""``/api/v1/sys``: health, seal state, init, unseal, seal, key rotation."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
import orjson
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from keysafe import __version__
from keysafe.audit.models import OUTCOME_OK
from keysafe.server import deps

router = APIRouter(prefix="/api/v1/sys", tags=["sys"])


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


class UnsealRequest(BaseModel):
    share: str | None = Field(None, max_length=4096)
    key: str | None = Field(None, max_length=4096)
    reset: bool = False


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


class InitReply(BaseModel):
    """Shown once: the unseal shares (or key) and the root token."""

    shares: list[str]
    root_token: str


class KeyringVersion(BaseModel):
    keyring_version: int


class RewrapReply(KeyringVersion):
    rewrapped: int
    remaining: int
    total: int


class Health(BaseModel):
    initialized: bool
    sealed: bool
    version: str


@router.get(
    "/health",
    responses={
        200: {"model": Health},
        503: {"model": Health, "description": "Sealed or not initialised"},
    },
)
async def health(request: Request) -> Response:
    """Liveness and seal state. 200 unsealed, 503 sealed or not initialised."""
    svc = deps.services(request)
    initialized = svc.system.seal_config() is not None
    sealed = svc.barrier.sealed
    doc = {"initialized": initialized, "sealed": sealed, "version": __version__}
    return json_response(doc, 200 if initialized and not sealed else 503)


@router.get("/seal-status", responses={200: {"model": SealStatus}})
async def seal_status(request: Request) -> Response:
    return json_response(deps.services(request).system.status())


@router.post("/init", responses={200: {"model": InitReply}})
async def init(request: Request, body: InitRequest) -> Response:
    svc = deps.services(request)
    result = await anyio.to_thread.run_sync(
        lambda: svc.system.initialize(body.shares, body.threshold)
    )
    return json_response({"shares": result.shares, "root_token": result.root_token})


@router.post("/unseal", responses={200: {"model": SealStatus}})
async def unseal(request: Request, body: UnsealRequest) -> Response:
    svc = deps.services(request)
    if body.reset:
        svc.barrier.reset_progress()
        return json_response(svc.system.status())
    status = await anyio.to_thread.run_sync(lambda: svc.system.unseal(body.share, body.key))
    return json_response(status)


async def _audit_sys(request: Request, operation: str, detail: str = "") -> None:
    ctx = await deps.needs_context(request, operation)
    await deps.record(
        deps.services(request),
        rid=ctx.request_id,
        actor=ctx.principal.token_id,
        src=ctx.source,
        operation=operation,
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


@router.post("/generate-root")
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
