"""``/api/v1/tokens``: scoped tokens minted by the root token."""

from __future__ import annotations

from typing import Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from keysafe.audit.models import OUTCOME_OK, AuditEvent
from keysafe.secrets.paths import validate_prefix
from keysafe.server import deps
from keysafe.server.routes.sys import json_response

router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"])


class TokenCreate(BaseModel):
    prefix: str = Field("", max_length=512)
    mode: Literal["read", "write"] = "read"
    ttl_seconds: int | None = Field(3600, ge=1)
    description: str = Field("", max_length=1024)


@router.post("", dependencies=[Depends(deps.root_only("token:create"))])
async def create_token(request: Request, body: TokenCreate) -> Response:
    ctx = await deps.root_context(request, "token:create")
    validate_prefix(body.prefix)
    svc = deps.services(request)

    def run() -> dict[str, object]:
        with svc.tokens.write_txn() as conn:
            issued = svc.tokens.mint(
                ctx.principal, body.prefix, body.mode, body.ttl_seconds, body.description, conn
            )
            svc.audit.append_in_txn(
                conn,
                [
                    AuditEvent(
                        svc.clock.now_us(),
                        ctx.request_id,
                        ctx.principal.token_id,
                        ctx.source,
                        "token:create",
                        body.prefix,
                        OUTCOME_OK,
                        f"{issued.record['id']} {body.mode}",
                    )
                ],
            )
        return {**issued.record, "token": issued.token}

    return json_response(await anyio.to_thread.run_sync(run))


@router.get("", dependencies=[Depends(deps.root_only("token:list"))])
async def list_tokens(request: Request) -> Response:
    await deps.root_context(request, "token:list")
    svc = deps.services(request)
    return json_response({"tokens": await anyio.to_thread.run_sync(svc.tokens.list_tokens)})


@router.get("/self", dependencies=[Depends(deps.authenticated)])
async def token_self(request: Request) -> Response:
    ctx = await deps.context(request)
    svc = deps.services(request)
    if ctx.principal.kind == "key":
        return json_response(await anyio.to_thread.run_sync(svc.keys.show, ctx.principal.token_id))
    return json_response(await anyio.to_thread.run_sync(svc.tokens.get, ctx.principal.token_id))


@router.delete("/{token_id}", dependencies=[Depends(deps.root_only("token:revoke"))])
async def revoke_token(request: Request, token_id: str) -> Response:
    ctx = await deps.root_context(request, "token:revoke")
    svc = deps.services(request)

    def run() -> None:
        with svc.tokens.write_txn() as conn:
            svc.tokens.revoke(token_id, conn)
            svc.audit.append_in_txn(
                conn,
                [
                    AuditEvent(
                        svc.clock.now_us(),
                        ctx.request_id,
                        ctx.principal.token_id,
                        ctx.source,
                        "token:revoke",
                        "",
                        OUTCOME_OK,
                        token_id,
                    )
                ],
            )

    await anyio.to_thread.run_sync(run)
    return Response(status_code=204)
