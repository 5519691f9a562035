"""``/api/v1/tokens``: scoped tokens minted by the root token."""

from __future__ import annotations

from typing import Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

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

    issued = await deps.audited_change(
        request,
        "token:create",
        body.prefix,
        lambda conn: svc.tokens.mint(
            ctx.principal, body.prefix, body.mode, body.ttl_seconds, body.description, conn
        ),
        lambda issued: f"{issued.record['id']} {body.mode}",
    )
    return json_response({**issued.record, "token": issued.token})


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
    await deps.root_context(request, "token:revoke")
    svc = deps.services(request)
    await deps.audited_change(
        request,
        "token:revoke",
        "",
        lambda conn: svc.tokens.revoke(token_id, conn),
        lambda _: token_id,
    )
    return Response(status_code=204)
