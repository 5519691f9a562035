"""Signing in and out of the console.

A person signs in with name, password and TOTP (or recovery) code through the same
login service as ``POST /api/v1/auth/login``: the same ``ks_sess_`` session, idle and
absolute limits, name lockout and per-address throttle. An operator may paste a token
instead; it is checked like a bearer token and kept only in the HttpOnly cookie (never
in the page or the browser's storage). Signing out revokes a person's session on the
server.
"""

from __future__ import annotations

import anyio.to_thread
from fastapi import APIRouter, Request
from starlette.responses import Response

from keysafe.access.login import Attempt, LoginFailed
from keysafe.errors import Forbidden, InvalidInput, KeysafeError, Unauthenticated
from keysafe.server import deps
from keysafe.server.monitoring import note_of
from keysafe.web.caller import Caller, act, common, renderer, sealed_page, show
from keysafe.web.render import redirect
from keysafe.web.security import (
    CSRF_FIELD,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    UI_PREFIX,
    check_origin,
    new_login_csrf,
    read_form,
    same_token,
)

router = APIRouter(prefix=UI_PREFIX, include_in_schema=False)

_LOGIN_FORM_BYTES = 8 * 1024


def _set_cookie(response: Response, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=UI_PREFIX,
        secure=True,
        httponly=True,
        samesite="strict",
    )


def _login_page(request: Request, status: int = 200, error: str = "") -> Response:
    svc = deps.services(request)
    token = new_login_csrf()
    response = renderer(request).page(
        "login.html", status, **{**common(svc, None), "csrf": token}, title="Sign in", error=error
    )
    _set_cookie(response, LOGIN_CSRF_COOKIE, token, None)
    return response


@router.get("")
async def root(request: Request) -> Response:
    return redirect(f"{UI_PREFIX}/")


@router.get("/")
async def home(request: Request) -> Response:
    async def page(_: object) -> Response:
        return redirect(f"{UI_PREFIX}/secrets")

    return await show(request, page)


@router.get("/login")
async def login_form(request: Request) -> Response:
    if deps.services(request).barrier.sealed:
        return sealed_page(request)
    return _login_page(request)


async def _anonymous_form(request: Request) -> dict[str, str]:
    """The form of a pre-sign-in POST after the origin, double-submit and per-address
    checks (raises Forbidden, RateLimited)."""
    check_origin(request)
    await deps.anonymous_route("login")(request)
    deps.services(request).throttle.check(deps.source(request))
    form = await read_form(request, _LOGIN_FORM_BYTES)
    if not same_token(request.cookies.get(LOGIN_CSRF_COOKIE, ""), form.get(CSRF_FIELD)):
        raise Forbidden("the form's CSRF token is missing or wrong; reload the page")
    return form


def _signed_in(token: str, max_age: int | None) -> Response:
    response = redirect(f"{UI_PREFIX}/secrets")
    _set_cookie(response, SESSION_COOKIE, token, max_age)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=UI_PREFIX, secure=True, httponly=True)
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    svc = deps.services(request)
    if svc.barrier.sealed:
        return sealed_page(request)
    src = deps.source(request)
    try:
        form = await _anonymous_form(request)
        attempt = Attempt(src, deps.request_id(request))
        result = await anyio.to_thread.run_sync(
            svc.users.login.login,
            form.get("name", "")[:256],
            form.get("password", "")[:1024],
            form.get("code") or None,
            attempt,
        )
    except LoginFailed as exc:
        await deps.failed_proof(deps.services(request), request, "auth:login")
        return _login_page(request, exc.status, exc.detail)
    except KeysafeError as exc:
        return _login_page(request, exc.status, exc.detail)
    return _signed_in(result.token, svc.settings.session_max_hours * 3600)


@router.post("/login/token")
async def login_with_token(request: Request) -> Response:
    """An operator's token: checked like a bearer token, then held by the cookie only
    for this browser session."""
    svc = deps.services(request)
    if svc.barrier.sealed:
        return sealed_page(request)
    try:
        form = await _anonymous_form(request)
        token = form.get("token", "").strip()[:4096]
        await deps.authenticate(
            svc,
            token or None,
            deps.source(request),
            deps.request_id(request),
            request.url.path,
            note_of(request.scope),
        )
    except Unauthenticated as exc:
        return _login_page(request, exc.status, "that token is not valid")
    except KeysafeError as exc:
        return _login_page(request, exc.status, exc.detail)
    return _signed_in(token, None)


def _safe_back(back: str) -> str:
    """Only a console page of this site (no other host, no scheme)."""
    if back.startswith(UI_PREFIX + "/") and "//" not in back and "\\" not in back:
        return back
    return f"{UI_PREFIX}/secrets"


@router.post("/mfa")
async def step_up(request: Request) -> Response:
    """Prove the second factor again in this session (like ``POST /api/v1/auth/mfa``),
    for rules that ask for a recent one; counted like a failed login when wrong."""
    svc = deps.services(request)

    async def action(caller: Caller, form: dict[str, str]) -> Response:
        token = request.cookies.get(SESSION_COOKIE, "")
        if not caller.person:
            raise InvalidInput("only a person's session proves a second factor")
        session = await anyio.to_thread.run_sync(svc.users.sessions.lookup, token)
        svc.throttle.check(caller.ctx.source)
        attempt = Attempt(caller.ctx.source, caller.ctx.request_id)
        try:
            await anyio.to_thread.run_sync(
                svc.users.login.step_up, session, form.get("code", "")[:64], attempt
            )
        except LoginFailed:
            await deps.failed_proof(deps.services(request), request, "auth:mfa")
            raise
        return redirect(_safe_back(form.get("back", "")))

    return await act(request, action)


@router.post("/logout")
async def logout(request: Request) -> Response:
    """Revoke a person's session on the server, then forget the cookie. A cookie that
    no longer authenticates is simply forgotten."""
    svc = deps.services(request)

    def signed_out() -> Response:
        response = redirect(f"{UI_PREFIX}/login")
        response.delete_cookie(SESSION_COOKIE, path=UI_PREFIX, secure=True, httponly=True)
        return response

    async def action(caller: object, form: dict[str, str]) -> Response:
        token = request.cookies.get(SESSION_COOKIE, "")
        if token.startswith("ks_sess_"):
            session = await anyio.to_thread.run_sync(svc.users.sessions.lookup, token)
            attempt = Attempt(deps.source(request), deps.request_id(request))
            await anyio.to_thread.run_sync(svc.users.login.logout, session, attempt)
        return signed_out()

    response = await act(request, action)
    return signed_out() if response.status_code == Unauthenticated.status else response
