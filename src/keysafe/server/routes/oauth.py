"""OAuth 2.0 client credentials (RFC 6749), JWKS, introspection (RFC 7662) and
revocation (RFC 7009) for short-lived access tokens."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qs

import anyio.to_thread
import orjson
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel
from starlette.responses import Response

from keysafe.access.models import RequestContext
from keysafe.errors import KeysafeError, Unauthenticated
from keysafe.server import deps
from keysafe.server.openapi import form_or_json_body
from keysafe.server.replies.exchange import AccessToken, Introspection, Jwks, SigningKey
from keysafe.server.routes.sys import json_response

router = APIRouter(tags=["oauth"])


async def _params(request: Request) -> dict[str, str]:
    """Form-encoded (as the RFCs say) or JSON parameters."""
    raw = await request.body()
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            doc = orjson.loads(raw or b"{}")
        except orjson.JSONDecodeError:
            return {}
        return {str(k): str(v) for k, v in doc.items()} if isinstance(doc, dict) else {}
    return {k: v[-1] for k, v in parse_qs(raw.decode("latin-1")).items()}


def _oauth_error(status: int, error: str, description: str) -> Response:
    body = orjson.dumps({"error": error, "error_description": description})
    headers = {"Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="keysafe"'
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _client_secret(request: Request, params: dict[str, str]) -> tuple[str | None, str | None]:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:]).decode()
        except (ValueError, UnicodeDecodeError):
            return None, None
        client_id, _, secret = decoded.partition(":")
        return client_id or None, secret or None
    return params.get("client_id"), params.get("client_secret")


class OAuthError(BaseModel):
    """RFC 6749's error answer (the OAuth endpoints speak OAuth, not problem documents)."""

    error: str
    error_description: str


_OAUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": OAuthError, "description": "RFC 6749 error"},
    401: {"model": OAuthError, "description": "RFC 6749 error"},
}


@router.post(
    "/api/v1/oauth/token",
    dependencies=[Depends(deps.anonymous_route("oauth-token"))],
    responses={200: {"model": AccessToken}, **_OAUTH_ERRORS},
    openapi_extra=form_or_json_body(
        {
            "grant_type": "client_credentials",
            "client_id": "the key's id (optional)",
            "client_secret": "the API key",
            "expires_in": "seconds, at most one hour",
        },
        ["grant_type"],
    ),
)
async def token(request: Request) -> Response:
    """Exchange an API key (``client_secret``; ``client_id`` its key id, optional) for a
    signed access token of at most one hour."""
    params = await _params(request)
    if params.get("grant_type") != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type", "use grant_type=client_credentials")
    client_id, secret = _client_secret(request, params)
    wanted = params.get("expires_in", "")
    # ASCII digits only (isdigit() admits "²"), and few of them: capped at an hour anyway.
    ttl = int(wanted) if wanted.isascii() and wanted.isdigit() and len(wanted) <= 6 else 900
    try:
        _, reply = await exchange_key(
            request,
            secret,
            client_id,
            ttl,
            operation="oauth:token",
            fields=("client_secret", "client_id"),
        )
    except KeysafeError as exc:
        return _oauth_error(401, "invalid_client", exc.detail)
    return Response(
        orjson.dumps(reply), media_type="application/json", headers={"Cache-Control": "no-store"}
    )


async def exchange_key(
    request: Request,
    secret: str | None,
    claimed_id: str | None,
    ttl: int,
    *,
    operation: str,
    fields: tuple[str, str],
) -> tuple[RequestContext, dict[str, Any]]:
    """Trade the API key ``secret`` (whose id, when ``claimed_id`` is given, must be
    that) for a signed access token; audited as ``operation`` whether it succeeds or the
    id does not match. ``fields`` names the secret and id in the caller's protocol, for
    the messages. Raises Unauthenticated (and what ``deps.authenticate`` raises)."""
    svc = deps.services(request)
    rid, src = deps.request_id(request), deps.source(request)
    secret_field, id_field = fields
    if not secret or not secret.startswith("ks_live_"):
        raise Unauthenticated(f"{secret_field} must be a keysafe API key")
    ctx = await deps.authenticate(svc, secret, src, rid, request.url.path)
    actor = ctx.principal.token_id
    if claimed_id is not None and claimed_id != actor:
        detail = f"{id_field} does not match the key"
        await deps.record(svc, rid=rid, actor=actor, src=src, operation=operation, detail=detail)
        raise Unauthenticated(detail)
    reply: dict[str, Any] = await anyio.to_thread.run_sync(
        lambda: svc.oauth.issue(ctx.principal, ttl)
    )
    await deps.record(
        svc,
        rid=rid,
        actor=actor,
        src=src,
        operation=operation,
        outcome="ok",
        detail=f"expires in {reply['expires_in']} s",
    )
    return ctx, reply


@router.get("/.well-known/jwks.json", responses={200: {"model": Jwks}})
async def jwks(request: Request) -> Response:
    """The public keys that verify keysafe access tokens (offline verification)."""
    svc = deps.services(request)
    return json_response(await anyio.to_thread.run_sync(svc.oauth.jwks))


@router.post(
    "/api/v1/oauth/introspect",
    dependencies=[Depends(deps.anonymous_route("oauth-introspect")), Depends(deps.authenticated)],
    responses={200: {"model": Introspection}},
    openapi_extra=form_or_json_body({"token": "the token to describe"}, ["token"]),
)
async def introspect(request: Request) -> Response:
    """RFC 7662 for any authenticated caller; ``{"active": false}`` for anything invalid."""
    params = await _params(request)
    svc = deps.services(request)
    result: dict[str, Any] = await anyio.to_thread.run_sync(
        lambda: svc.oauth.introspect(params.get("token", ""))
    )
    return json_response(result)


@router.post(
    "/api/v1/oauth/revoke",
    dependencies=[Depends(deps.anonymous_route("oauth-revoke"))],
    response_class=Response,
    responses={200: {"description": "Revoked, or nothing to revoke (RFC 7009): no body"}},
    openapi_extra=form_or_json_body({"token": "the token to revoke"}, ["token"]),
)
async def revoke(request: Request) -> Response:
    """RFC 7009: whoever holds a token may revoke it; always 200."""
    params = await _params(request)
    svc = deps.services(request)
    await anyio.to_thread.run_sync(lambda: svc.oauth.revoke(params.get("token", "")))
    await deps.record(
        svc,
        rid=deps.request_id(request),
        actor="token-holder",
        src=deps.source(request),
        operation="oauth:revoke",
        outcome="ok",
    )
    return Response(status_code=200)


@router.post(
    "/api/v1/sys/rotate-signing-key",
    dependencies=[Depends(deps.needs("sys:rotate-signing-key"))],
    responses={200: {"model": SigningKey}},
)
async def rotate_signing_key(request: Request) -> Response:
    """A new JWT signing key; the previous one verifies until its tokens have expired."""
    svc = deps.services(request)
    kid = await anyio.to_thread.run_sync(svc.system.rotate_signing_key)
    ctx = await deps.context(request)
    await deps.record_as(
        svc,
        ctx,
        "sys:rotate-signing-key",
        outcome="ok",
        detail=kid,
    )
    return json_response({"kid": kid})
