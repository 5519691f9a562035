"""``/api/v1/tokens``: scoped tokens, bound to policies or (root only) to a mode and prefix."""

from __future__ import annotations

from typing import Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from keysafe.secrets.paths import validate_prefix
from keysafe.server import deps
from keysafe.server.params import PositiveSeconds
from keysafe.server.replies.tokens import TokenIssued, TokenList, TokenSelf
from keysafe.server.routes.sys import json_response

router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"])


class TokenCreate(BaseModel):
    prefix: str = Field("", max_length=512)
    mode: Literal["read", "write"] = "read"
    ttl_seconds: PositiveSeconds | None = 3600
    description: str = Field("", max_length=1024)
    # Policy names: a policy-bound token (mode and prefix are then ignored).
    policies: list[str] = Field(default_factory=list, max_length=64)


@router.post(
    "", dependencies=[Depends(deps.needs("token:create"))], responses={200: {"model": TokenIssued}}
)
async def create_token(request: Request, body: TokenCreate) -> Response:
    ctx = await deps.needs_context(request, "token:create")
    if not body.policies:
        validate_prefix(body.prefix)
    svc = deps.services(request)

    issued = await deps.audited_change(
        request,
        "token:create",
        body.prefix,
        lambda conn: svc.tokens.mint(
            ctx.principal,
            body.prefix,
            body.mode,
            body.ttl_seconds,
            body.description,
            conn,
            policies=body.policies,
        ),
        lambda issued: (
            f"{issued.record['id']} "
            + (f"policies {','.join(body.policies)}" if body.policies else body.mode)
        ),
    )
    return json_response({**issued.record, "token": issued.token})


@router.get(
    "", dependencies=[Depends(deps.needs("token:list"))], responses={200: {"model": TokenList}}
)
async def list_tokens(request: Request) -> Response:
    await deps.needs_context(request, "token:list")
    svc = deps.services(request)
    return json_response({"tokens": await anyio.to_thread.run_sync(svc.tokens.list_tokens)})


@router.get(
    "/self", dependencies=[Depends(deps.authenticated)], responses={200: {"model": TokenSelf}}
)
async def token_self(request: Request) -> Response:
    ctx = await deps.context(request)
    svc = deps.services(request)
    if ctx.principal.kind == "key":
        return json_response(await anyio.to_thread.run_sync(svc.keys.show, ctx.principal.token_id))
    if ctx.principal.kind == "user":
        # A person's session: the same short description /api/v1/auth/self starts with.
        from keysafe.timefmt import iso_us

        p = ctx.principal
        return json_response(
            {
                "id": p.token_id,
                "kind": p.kind,
                "policies": list(p.policies),
                "expires_at": iso_us(p.expires_at),
                "mfa_at": iso_us(p.mfa_at),
            }
        )
    return json_response(await anyio.to_thread.run_sync(svc.tokens.get, ctx.principal.token_id))


@router.delete("/{token_id}", status_code=204, dependencies=[Depends(deps.needs("token:revoke"))])
async def revoke_token(request: Request, token_id: str) -> Response:
    await deps.needs_context(request, "token:revoke")
    svc = deps.services(request)
    await deps.audited_change(
        request,
        "token:revoke",
        "",
        lambda conn: svc.tokens.revoke(token_id, conn),
        lambda _: token_id,
    )
    return Response(status_code=204)
