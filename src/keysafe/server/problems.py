"""Errors as RFC 9457 problem documents (native API) or Vault's ``{"errors": [...]}``."""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from keysafe.errors import (
    CasMismatch,
    InvalidInput,
    KeysafeError,
    NotFound,
    RateLimited,
    ServerError,
    Unauthenticated,
    ValueTooLarge,
)

log = logging.getLogger("keysafe.server")

PROBLEM_JSON = "application/problem+json"


def rate_limit_headers(error: RateLimited) -> dict[str, str]:
    """``Retry-After``, plus the IETF draft's ``RateLimit-Limit``/``-Remaining``/
    ``-Reset`` when the refusal names its limit (rate limits do; lockouts do not)."""
    headers = {"Retry-After": str(error.retry_after)}
    if "limit" in error.extra:
        headers["RateLimit-Limit"] = str(error.extra["limit"])
        headers["RateLimit-Remaining"] = str(error.extra.get("remaining", 0))
        headers["RateLimit-Reset"] = str(error.extra.get("reset", error.retry_after))
    return headers


class UnknownRoute(NotFound):
    """No route matched (Vault answers it with an empty ``errors`` list)."""


def vault_error(error: KeysafeError) -> tuple[int, bytes]:
    """(status, body) of ``error`` as Vault answers it: a missing or bad token is 403
    ``permission denied`` (hvac's ``is_authenticated`` relies on it), a stale ``cas``
    400, an unknown route 404 with no messages."""
    status = error.status
    messages = [error.detail]
    if isinstance(error, Unauthenticated):
        status, messages = 403, ["permission denied"]
    elif isinstance(error, CasMismatch):
        status = 400
    elif isinstance(error, UnknownRoute):
        messages = []
    return status, orjson.dumps({"errors": messages})


def raw_reply(path: str, error: KeysafeError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """(status, headers, body) of ``error`` for pure ASGI layers that answer before the
    router: Vault's ``{"errors"}`` on ``/v1``, a problem document elsewhere."""
    status = error.status
    if path.startswith("/v1/"):
        (status, body), ctype = vault_error(error), b"application/json"
    else:
        body, ctype = orjson.dumps(error.to_problem(instance=path)), PROBLEM_JSON.encode()
    headers = [(b"content-type", ctype), (b"content-length", b"%d" % len(body))]
    if isinstance(error, RateLimited):
        headers += [(k.lower().encode(), v.encode()) for k, v in rate_limit_headers(error).items()]
    return status, headers, body


def problem_response(
    request: Request, error: KeysafeError, extra_headers: dict[str, str] | None = None
) -> Response:
    headers = rate_limit_headers(error) if isinstance(error, RateLimited) else {}
    headers.update(extra_headers or {})
    if request.url.path.startswith("/v1/"):
        status, body = vault_error(error)
        return Response(body, status_code=status, media_type="application/json", headers=headers)
    body = orjson.dumps(error.to_problem(instance=request.url.path))
    return Response(body, status_code=error.status, media_type=PROBLEM_JSON, headers=headers)


def install(app: FastAPI) -> None:
    async def on_keysafe_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, KeysafeError)
        return problem_response(request, exc)

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        return problem_response(request, InvalidInput("; ".join(parts) or "invalid request"))

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            return problem_response(request, UnknownRoute(f"no route {request.url.path}"))
        if exc.status_code == 413:
            return problem_response(request, ValueTooLarge("the request body is too large"))
        error = KeysafeError(str(exc.detail))
        error.status = exc.status_code  # type: ignore[misc]
        error.code = "method_not_allowed" if exc.status_code == 405 else "http_error"  # type: ignore[misc]
        error.title = "Method not allowed" if exc.status_code == 405 else "HTTP error"  # type: ignore[misc]
        # Starlette names the allowed methods of a 405 in ``Allow``: keep it (RFC 9110).
        return problem_response(request, error, dict(exc.headers or {}))

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        # Never echo internals (they may quote data); the log has the traceback.
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem_response(request, ServerError("internal error; see the server log"))

    app.add_exception_handler(KeysafeError, on_keysafe_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
