"""The console's own defences: response headers, CSRF, form parsing.

Every ``/ui`` response carries a strict Content-Security-Policy (our own files only, no
inline script or style), ``frame-ancestors 'none'``, ``Referrer-Policy: no-referrer`` and
``Cache-Control: no-store`` (pages may show a value), set by one ASGI layer so that error
pages and redirects get them too.

CSRF, two layers on every POST: the browser's ``Sec-Fetch-Site`` and ``Origin`` must
not name another site, and the form must carry a token. Signed in, the token is bound to the
session (a keyed hash of the credential, so every worker process can check it without
shared state); before sign-in it is a random value also held in a cookie (double
submit). Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import parse_qs

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keysafe.errors import Forbidden, InvalidInput, ValueTooLarge

UI_PREFIX = "/ui"
# The session cookie (a ``ks_sess_`` token, or an operator's token) and the pre-sign-in
# double-submit cookie. Renaming them signs everyone out.
SESSION_COOKIE = "ks_console"
LOGIN_CSRF_COOKIE = "ks_console_csrf"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), clipboard-read=()",
}
# Form bodies: a secret value (its own limit applies later) plus a few fields.
MAX_FIELDS = 32


class ConsoleHeaders:
    """Pure ASGI layer: the security headers on every response under ``/ui``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not (path == UI_PREFIX or path.startswith(UI_PREFIX + "/")):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


def session_csrf(token_hash: bytes) -> str:
    """The CSRF token of a signed-in browser, from a keyed hash of its credential."""
    return token_hash.hex()


def new_login_csrf() -> str:
    return secrets.token_urlsafe(32)


def same_token(expected: str, given: str | None) -> bool:
    """Constant-time comparison; an empty or missing token never matches."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def check_origin(request: Request) -> None:
    """Refuse a POST another site started: ``Sec-Fetch-Site`` must say same-origin, and
    an ``Origin`` must be ours (browsers send ``null`` under ``no-referrer``: then the
    CSRF token alone decides). Raises Forbidden."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise Forbidden("cross-site request refused")
    origin = request.headers.get("origin")
    if origin is not None and origin != "null":
        ours = f"{request.url.scheme}://{request.headers.get('host', '')}"
        if origin != ours:
            raise Forbidden("cross-site request refused")


async def read_form(request: Request, max_bytes: int) -> dict[str, str]:
    """The URL-encoded form of a POST (one value per name; the first wins). Raises
    InvalidInput for another content type or bad encoding, ValueTooLarge past
    ``max_bytes``."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise InvalidInput("the console accepts URL-encoded forms only")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise ValueTooLarge("the form is too large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise ValueTooLarge("the form is too large")
    try:
        parsed = parse_qs(
            bytes(body).decode("ascii"),
            keep_blank_values=True,
            strict_parsing=False,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput("the form is not valid URL-encoded UTF-8") from exc
    return {name: values[0] for name, values in parsed.items()}
