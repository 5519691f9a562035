"""Who is using the console, and the one way every page runs.

The browser holds its credential in an HttpOnly cookie; each request authenticates it
exactly as the API authenticates a bearer token (``deps.authenticate``: the same
session limits, throttles, rate limits and audit of failures). Pages then call the same
services with the same request context as the API routes, so policies decide and the
audit records the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from keysafe.access.models import RequestContext
from keysafe.errors import Forbidden, KeysafeError, MfaRequired, ServerError, Unauthenticated
from keysafe.server import deps
from keysafe.server.monitoring import note_of
from keysafe.server.services import Services
from keysafe.web.render import Renderer, redirect
from keysafe.web.security import (
    CSRF_FIELD,
    CSRF_HEADER,
    SESSION_COOKIE,
    UI_PREFIX,
    check_origin,
    read_form,
    same_token,
    session_csrf,
)

log = logging.getLogger("keysafe.server")

# Room for a secret value (JSON-free, but URL-encoding may triple it) and a few fields.
_FORM_MARGIN = 16 * 1024


@dataclass(frozen=True)
class Caller:
    """A signed-in browser: its request context and its CSRF token."""

    ctx: RequestContext
    csrf: str
    person: bool  # a ``ks_sess_`` session (else an operator's token)

    @property
    def actor(self) -> str:
        return self.ctx.principal.token_id


def renderer(request: Request) -> Renderer:
    found: Renderer = request.app.state.console
    return found


def may(svc: Services, caller: Caller, capability: str, path: str) -> bool:
    """Whether the policies would allow ``capability`` on ``path`` (to hide buttons;
    the services decide again when the action comes)."""
    ctx = caller.ctx
    return bool(svc.authorizer.decide(ctx.principal, capability, path, ctx.source))


def may_admin(svc: Services, caller: Caller, operation: str) -> bool:
    """Whether the caller holds what the administrative ``operation`` needs."""
    if caller.ctx.principal.is_root:
        return True
    capability, path = deps.admin_resource(operation)
    return may(svc, caller, capability, path)


def common(svc: Services, caller: Caller | None) -> dict[str, Any]:
    """What every page's frame shows: who, the CSRF token, the links one may follow."""
    if caller is None:
        return {"who": None, "csrf": "", "nav": {}, "sealed": svc.barrier.sealed}
    return {
        "who": caller.actor,
        "csrf": caller.csrf,
        "sealed": svc.barrier.sealed,
        "nav": {
            "policies": may_admin(svc, caller, "policy:list"),
            "audit": may_admin(svc, caller, "audit:read"),
        },
    }


async def authenticate(request: Request) -> Caller:
    """The caller behind the console cookie; raises Unauthenticated (audited)."""
    svc = deps.services(request)
    token = request.cookies.get(SESSION_COOKIE)
    ctx = await deps.authenticate(
        svc,
        token,
        deps.source(request),
        deps.request_id(request),
        request.url.path,
        note_of(request.scope),
    )
    # Cached where deps.context looks: admin checks and audited changes reuse it.
    request.state.ks_ctx = ctx
    digest = svc.users.sessions.hash("console-csrf\x00" + (token or ""))
    return Caller(ctx, session_csrf(digest), person=(token or "").startswith("ks_sess_"))


Page = Callable[[Caller], Awaitable[Response]]
Action = Callable[[Caller, dict[str, str]], Awaitable[Response]]


def sealed_page(request: Request) -> Response:
    svc = deps.services(request)
    return renderer(request).page(
        "sealed.html", 503, **common(svc, None), title="Sealed", seal=svc.system.status()
    )


def error_page(request: Request, caller: Caller | None, error: KeysafeError) -> Response:
    """The error as a page with its status; a person refused for want of a recent second
    factor gets the step-up form."""
    svc = deps.services(request)
    back = request.url.path if request.method == "GET" else f"{UI_PREFIX}/secrets"
    if request.method == "GET" and request.url.query:
        back += "?" + request.url.query
    return renderer(request).page(
        "error.html",
        error.status,
        **common(svc, caller),
        title=error.title,
        message=error.detail,
        step_up=isinstance(error, MfaRequired) and caller is not None and caller.person,
        back=back,
    )


def unexpected(request: Request, caller: Caller | None) -> Response:
    """A bug: logged with its traceback, answered as a page without internals."""
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_page(request, caller, ServerError("internal error; see the server log"))


async def show(request: Request, page: Page) -> Response:
    """Run a GET page for a signed-in caller; anyone else goes to the sign-in page."""
    svc = deps.services(request)
    if svc.barrier.sealed:
        return sealed_page(request)
    try:
        caller = await authenticate(request)
    except Unauthenticated:
        return redirect("/ui/login")
    except KeysafeError as exc:
        return error_page(request, None, exc)
    try:
        return await page(caller)
    except KeysafeError as exc:
        return error_page(request, caller, exc)
    except Exception:
        return unexpected(request, caller)


async def act(request: Request, action: Action) -> Response:
    """Run a POST for a signed-in caller after the origin and CSRF checks."""
    svc = deps.services(request)
    if svc.barrier.sealed:
        return sealed_page(request)
    caller: Caller | None = None
    try:
        check_origin(request)
        caller = await authenticate(request)
        form = await read_form(request, svc.settings.max_value_bytes * 3 + _FORM_MARGIN)
        given = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
        if not same_token(caller.csrf, given):
            await deps.record(
                svc,
                rid=caller.ctx.request_id,
                actor=caller.actor,
                src=caller.ctx.source,
                operation="console:csrf",
                path=request.url.path,
                detail="missing or wrong CSRF token",
            )
            raise Forbidden("the form's CSRF token is missing or wrong; reload the page")
        return await action(caller, form)
    except KeysafeError as exc:
        return error_page(request, caller, exc)
    except Exception:
        return unexpected(request, caller)
