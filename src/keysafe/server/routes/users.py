"""``/api/v1/auth/*`` (people log in, step up, enrol TOTP, log out) and the admin routes
``/api/v1/users``, ``/api/v1/roles``.

Login is public (the proof is the password and second factor) and throttled per source
address as well as per name. The ``auth`` routes other than login act on the caller's
own session. Users and roles need ``admin`` on ``sys/user``, ``sys/role`` and
``sys/session`` (the root token holds it). Every change is audited.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from keysafe.access.login import Attempt, LoginFailed, LoginResult
from keysafe.access.passwords import MAX_PASSWORD_LENGTH
from keysafe.access.sessions import SessionRecord
from keysafe.errors import InvalidInput
from keysafe.server import deps
from keysafe.server.replies.people import (
    LoginReply,
    MfaReply,
    RecoveryCodes,
    RoleList,
    RoleWritten,
    SessionList,
    SessionsRevoked,
    TotpEnrolment,
    UserDisabled,
    UserList,
    UserRecord,
    WhoAmI,
)
from keysafe.server.routes.sys import json_response
from keysafe.server.services import Services

router = APIRouter(prefix="/api/v1", tags=["people"])

_NEEDS_SESSION = "this needs a person's session: log in with `keysafe login NAME`"


class LoginBody(BaseModel):
    name: str = Field(max_length=256)
    password: str = Field(max_length=MAX_PASSWORD_LENGTH)
    # A TOTP code or a recovery code; required once the user has enrolled TOTP.
    code: str | None = Field(None, max_length=64)


class CodeBody(BaseModel):
    code: str = Field(max_length=64)


class PasswordBody(BaseModel):
    password: str = Field(max_length=MAX_PASSWORD_LENGTH)


class UserBody(BaseModel):
    name: str = Field(max_length=64)
    password: str = Field(max_length=MAX_PASSWORD_LENGTH)
    roles: list[str] = Field(default_factory=list, max_length=64)


class RolesBody(BaseModel):
    roles: list[str] = Field(max_length=64)


class RoleBody(BaseModel):
    policies: list[str] = Field(max_length=64)


def _attempt(request: Request) -> Attempt:
    return Attempt(deps.source(request), deps.request_id(request))


async def _session(request: Request) -> tuple[Services, SessionRecord]:
    """The caller's own session; InvalidInput for any other kind of credential."""
    await deps.context(request)
    token = deps.bearer_token(request) or ""
    if not token.startswith("ks_sess_"):
        raise InvalidInput(_NEEDS_SESSION)
    svc = deps.services(request)
    return svc, await anyio.to_thread.run_sync(svc.users.sessions.lookup, token)


def _holder(request: Request) -> tuple[str, ...] | None:
    principal = request.state.ks_ctx.principal
    return None if principal.is_root else tuple(principal.policies)


# -- login, step-up, enrolment, logout -------------------------------------------------


@router.post(
    "/auth/login",
    dependencies=[Depends(deps.anonymous_route("login"))],
    responses={200: {"model": LoginReply}},
)
async def login(request: Request, body: LoginBody) -> Response:
    """A session token (``ks_sess_...``, in this reply only) for a name, its password and,
    once enrolled, a TOTP or recovery code. 401 with one detail for every failure; 429
    ``account_locked`` (Retry-After) after too many failures for the name, 429
    ``rate_limited`` after too many from the address."""
    svc = deps.services(request)
    svc.throttle.check(deps.source(request))
    try:
        result: LoginResult = await anyio.to_thread.run_sync(
            svc.users.login.login, body.name, body.password, body.code, _attempt(request)
        )
    except LoginFailed:
        await deps.failed_proof(svc, request, "auth:login")
        raise
    return json_response(
        {"token": result.token, "name": result.name, "mfa": result.mfa, "session": result.session}
    )


@router.post(
    "/auth/mfa",
    dependencies=[Depends(deps.authenticated)],
    responses={200: {"model": MfaReply}},
)
async def step_up(request: Request, body: CodeBody) -> Response:
    """Prove the second factor again: the session's MFA time becomes now."""
    svc, session = await _session(request)
    svc.throttle.check(deps.source(request))
    try:
        await anyio.to_thread.run_sync(
            svc.users.login.step_up, session, body.code, _attempt(request)
        )
    except LoginFailed:
        await deps.failed_proof(svc, request, "auth:mfa")
        raise
    return json_response({"mfa": True})


@router.post(
    "/auth/totp",
    dependencies=[Depends(deps.authenticated)],
    responses={200: {"model": TotpEnrolment}},
)
async def begin_totp(request: Request, body: PasswordBody) -> Response:
    """Start TOTP enrolment (the password again): the otpauth URI, once."""
    svc, session = await _session(request)
    svc.throttle.check(deps.source(request))
    try:
        doc = await anyio.to_thread.run_sync(
            svc.users.login.begin_totp, session, body.password, _attempt(request)
        )
    except LoginFailed:
        await deps.failed_proof(svc, request, "auth:totp-enrol")
        raise
    return json_response(doc)


@router.post(
    "/auth/totp/confirm",
    dependencies=[Depends(deps.authenticated)],
    responses={200: {"model": RecoveryCodes}},
)
async def confirm_totp(request: Request, body: CodeBody) -> Response:
    """Finish enrolment with a code: the recovery codes, once."""
    svc, session = await _session(request)
    codes = await anyio.to_thread.run_sync(
        svc.users.login.confirm_totp, session, body.code, _attempt(request)
    )
    return json_response({"recovery_codes": codes})


@router.post("/auth/logout", status_code=204, dependencies=[Depends(deps.authenticated)])
async def logout(request: Request) -> Response:
    """Revoke the caller's session."""
    svc, session = await _session(request)
    await anyio.to_thread.run_sync(svc.users.login.logout, session, _attempt(request))
    return Response(status_code=204)


@router.get(
    "/auth/self",
    dependencies=[Depends(deps.authenticated)],
    responses={200: {"model": WhoAmI}},
)
async def whoami(request: Request) -> Response:
    """Who the caller is: for a person, their name, roles, policies and session."""
    ctx = await deps.context(request)
    principal = ctx.principal
    doc: dict[str, Any] = {
        "actor": principal.token_id,
        "kind": principal.kind,
        "policies": list(principal.policies),
    }
    token = deps.bearer_token(request) or ""
    if token.startswith("ks_sess_"):
        svc, session = await _session(request)
        user = await anyio.to_thread.run_sync(svc.users.accounts.show, session.name)
        live = await anyio.to_thread.run_sync(svc.users.sessions.list_for, session.user_id)
        doc.update(
            name=user["name"],
            roles=user["roles"],
            mfa_enrolled=user["mfa"],
            session=next((s for s in live if s["id"] == session.id), None),
        )
    return json_response(doc)


# -- users (admin) -----------------------------------------------------------------------


@router.post(
    "/users",
    dependencies=[Depends(deps.needs("user:create"))],
    responses={200: {"model": UserRecord}},
)
async def create_user(request: Request, body: UserBody) -> Response:
    ctx = await deps.needs_context(request, "user:create")
    svc = deps.services(request)
    hashed = await anyio.to_thread.run_sync(
        svc.users.accounts.new_password_hash, body.name, body.password
    )
    holder = _holder(request)
    record = await deps.audited_change(
        request,
        "user:create",
        f"user/{body.name}",
        lambda conn: svc.users.accounts.create(
            conn, body.name, hashed, body.roles, ctx.principal.token_id, holder
        ),
        lambda record: f"roles {','.join(record['roles']) or '-'}",
    )
    return json_response(record)


@router.get(
    "/users",
    dependencies=[Depends(deps.needs("user:list"))],
    responses={200: {"model": UserList}},
)
async def list_users(request: Request) -> Response:
    svc = deps.services(request)
    return json_response({"users": await anyio.to_thread.run_sync(svc.users.accounts.list_users)})


@router.get(
    "/users/{name}",
    dependencies=[Depends(deps.needs("user:read"))],
    responses={200: {"model": UserRecord}},
)
async def show_user(request: Request, name: str) -> Response:
    svc = deps.services(request)
    return json_response(await anyio.to_thread.run_sync(svc.users.accounts.show, name))


@router.put(
    "/users/{name}/roles",
    dependencies=[Depends(deps.needs("user:roles"))],
    responses={200: {"model": UserRecord}},
)
async def set_roles(request: Request, name: str, body: RolesBody) -> Response:
    ctx = await deps.needs_context(request, "user:roles")
    svc = deps.services(request)
    holder = _holder(request)
    record = await deps.audited_change(
        request,
        "user:roles",
        f"user/{name}",
        lambda conn: svc.users.accounts.set_roles(
            conn, name, body.roles, ctx.principal.token_id, holder
        ),
        lambda record: f"roles {','.join(record['roles']) or '-'}",
    )
    return json_response(record)


@router.post(
    "/users/{name}/unlock", status_code=204, dependencies=[Depends(deps.needs("user:unlock"))]
)
async def unlock_user(request: Request, name: str) -> Response:
    svc = deps.services(request)
    try:
        await deps.audited_change(
            request, "user:unlock", f"user/{name}", lambda c: svc.users.accounts.unlock(c, name)
        )
    finally:
        # Unknown names lock too (so that locks do not reveal who exists): clear both.
        svc.users.login.forget_unknown(name)
    return Response(status_code=204)


@router.post(
    "/users/{name}/disable",
    dependencies=[Depends(deps.needs("user:disable"))],
    responses={200: {"model": UserDisabled}},
)
async def disable_user(request: Request, name: str) -> Response:
    svc = deps.services(request)
    revoked = await deps.audited_change(
        request,
        "user:disable",
        f"user/{name}",
        lambda conn: svc.users.accounts.set_disabled(conn, name, True),
        lambda n: f"{n} sessions revoked",
    )
    return json_response({"disabled": True, "sessions_revoked": revoked})


@router.post(
    "/users/{name}/enable",
    dependencies=[Depends(deps.needs("user:enable"))],
    responses={200: {"model": UserDisabled}},
)
async def enable_user(request: Request, name: str) -> Response:
    svc = deps.services(request)
    await deps.audited_change(
        request,
        "user:enable",
        f"user/{name}",
        lambda conn: svc.users.accounts.set_disabled(conn, name, False),
    )
    return json_response({"disabled": False})


@router.delete(
    "/users/{name}/mfa", status_code=204, dependencies=[Depends(deps.needs("user:reset-mfa"))]
)
async def reset_mfa(request: Request, name: str) -> Response:
    """Remove a user's TOTP and recovery codes (lost device); they enrol again."""
    svc = deps.services(request)
    await deps.audited_change(
        request, "user:reset-mfa", f"user/{name}", lambda c: svc.users.accounts.reset_totp(c, name)
    )
    return Response(status_code=204)


@router.delete("/users/{name}", status_code=204, dependencies=[Depends(deps.needs("user:delete"))])
async def delete_user(request: Request, name: str) -> Response:
    svc = deps.services(request)
    await deps.audited_change(
        request, "user:delete", f"user/{name}", lambda c: svc.users.accounts.delete(c, name)
    )
    return Response(status_code=204)


@router.get(
    "/users/{name}/sessions",
    dependencies=[Depends(deps.needs("session:list"))],
    responses={200: {"model": SessionList}},
)
async def list_sessions(request: Request, name: str) -> Response:
    svc = deps.services(request)
    user = await anyio.to_thread.run_sync(svc.users.accounts.show, name)
    found = await anyio.to_thread.run_sync(svc.users.sessions.list_for, user["id"])
    return json_response({"sessions": found})


@router.delete(
    "/users/{name}/sessions/{session_id}",
    status_code=204,
    dependencies=[Depends(deps.needs("session:revoke"))],
)
async def revoke_session(request: Request, name: str, session_id: str) -> Response:
    svc = deps.services(request)
    user = await anyio.to_thread.run_sync(svc.users.accounts.show, name)
    await deps.audited_change(
        request,
        "session:revoke",
        f"user/{user['name']}",
        lambda conn: svc.users.sessions.revoke(conn, session_id, user["id"]),
        lambda _: session_id,
    )
    return Response(status_code=204)


@router.delete(
    "/users/{name}/sessions",
    dependencies=[Depends(deps.needs("session:revoke"))],
    responses={200: {"model": SessionsRevoked}},
)
async def revoke_sessions(request: Request, name: str) -> Response:
    svc = deps.services(request)
    user = await anyio.to_thread.run_sync(svc.users.accounts.show, name)
    revoked = await deps.audited_change(
        request,
        "session:revoke",
        f"user/{user['name']}",
        lambda conn: svc.users.sessions.revoke_all(conn, user["id"]),
        lambda n: f"all ({n})",
    )
    return json_response({"revoked": revoked})


# -- roles (admin) -----------------------------------------------------------------------


@router.put(
    "/roles/{name}",
    dependencies=[Depends(deps.needs("role:write"))],
    responses={200: {"model": RoleWritten}},
)
async def write_role(request: Request, name: str, body: RoleBody) -> Response:
    ctx = await deps.needs_context(request, "role:write")
    svc = deps.services(request)
    holder = _holder(request)
    record = await deps.audited_change(
        request,
        "role:write",
        f"role/{name}",
        lambda conn: svc.users.accounts.write_role(
            conn, name, body.policies, ctx.principal.token_id, holder
        ),
        lambda record: f"policies {','.join(record['policies'])}",
    )
    return json_response(record)


@router.get(
    "/roles",
    dependencies=[Depends(deps.needs("role:list"))],
    responses={200: {"model": RoleList}},
)
async def list_roles(request: Request) -> Response:
    svc = deps.services(request)
    return json_response({"roles": await anyio.to_thread.run_sync(svc.users.accounts.list_roles)})


@router.delete("/roles/{name}", status_code=204, dependencies=[Depends(deps.needs("role:delete"))])
async def delete_role(request: Request, name: str) -> Response:
    svc = deps.services(request)
    await deps.audited_change(
        request, "role:delete", f"role/{name}", lambda c: svc.users.accounts.delete_role(c, name)
    )
    return Response(status_code=204)
