"""Refuse JSON bodies that keysafe could parse but never store or serialise again.

FastAPI (and Starlette's ``Request.json``) parse with the standard library, which lets
through lone UTF-16 surrogates, ``NaN``/``1e999``, integers of any size and nesting
until a ``RecursionError``: each then failed deep inside a route as a 500. This layer
checks every JSON body once against ``keysafe.bounds`` before any route sees it, so that
every route, present or future, answers such input with a 400 in its own error shape.
Bodies that are not JSON at all get one clear 400 here too, except on the OAuth routes,
which report them in RFC 6749's shape.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keysafe.bounds import loads_bounded
from keysafe.errors import InvalidInput, ValueTooLarge
from keysafe.server import problems

# Routes that report a body's syntax errors themselves (OAuth answers in RFC 6749's shape).
_OWN_SYNTAX_ERRORS = ("/api/v1/oauth/",)


class JsonGate:
    """Pure ASGI middleware: buffer a JSON (or untyped) request body, check it, then
    replay it unchanged to ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD") or not _json_typed(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        try:
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    # The client went away: nothing to check, let the app see it.
                    await self.app(scope, _replay(chunks, message, receive), send)
                    return
                chunks.append(message.get("body", b""))
                more = message.get("more_body", False)
        except HTTPException as exc:  # FastAPI's body limit, raised from receive()
            if exc.status_code != 413:
                raise
            await _refuse(scope, send, ValueTooLarge("the request body is too large"))
            return
        body = b"".join(chunks)
        if body.strip():
            error = _check(body, strict=not scope["path"].startswith(_OWN_SYNTAX_ERRORS))
            if error is not None:
                await _refuse(scope, send, error)
                return
        await self.app(scope, _replay([body], None, receive), send)


def _json_typed(scope: Scope) -> bool:
    """Whether FastAPI would parse this body as JSON: no content type, or a JSON one."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            media: bytes = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return True


def _check(body: bytes, *, strict: bool = True) -> InvalidInput | None:
    """The reason to refuse ``body``, or None to let it through (plain syntax errors
    too unless ``strict``)."""
    try:
        loads_bounded(body)
    except InvalidInput as error:
        if not error.detail.startswith("invalid JSON"):
            return error  # parsed, but out of bounds
        # Our parser refused it: refuse too if the standard one would accept it (a lone
        # surrogate, NaN, deep nesting); plain syntax errors stay the route's to report.
        try:
            json.loads(body)
        except RecursionError:
            return InvalidInput("invalid JSON: nested too deeply")
        except ValueError:
            if strict:
                return InvalidInput(f"the request body is not valid JSON ({error.detail})")
            return None
        return InvalidInput(
            f"{error.detail} (strings must be valid Unicode, numbers finite, nesting at"
            " most 64 levels)"
        )
    return None


def _replay(chunks: list[bytes], last: Message | None, receive: Receive) -> Receive:
    """A ``receive`` that hands out the buffered body first, then defers to the real one
    (so that disconnects are still seen)."""
    pending: list[Message] = [
        {"type": "http.request", "body": b"".join(chunks), "more_body": False}
    ]
    if last is not None:
        pending = [last]

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


async def _refuse(scope: Scope, send: Send, error: InvalidInput) -> None:
    status, headers, body = problems.raw_reply(scope["path"], error)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
