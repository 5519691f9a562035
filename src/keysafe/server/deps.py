"""Per-request plumbing: the services, the caller, the request id."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio.to_thread
from sqlalchemy import Connection
from starlette.requests import Request

from keysafe.access.models import Deny, RequestContext, denial
from keysafe.audit.models import OUTCOME_DENIED, OUTCOME_OK, AuditEvent
from keysafe.errors import Forbidden, Unauthenticated
from keysafe.server.clientaddr import client_host
from keysafe.server.monitoring import RequestNote, note_of, refuse
from keysafe.server.services import Services
from keysafe.store.engine import write_txn

T = TypeVar("T")

# Set on every ``needs(...)`` dependency: the route requires a credential.
NEEDS_MARK = "keysafe_needs"


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


def request_id(request: Request) -> str:
    return request_id_from(request.headers.get("x-request-id"))


def request_id_from(given: str | None) -> str:
    """The client's X-Request-Id if it is short ASCII, else a fresh random id."""
    if given and len(given) <= 64 and given.isascii():
        return given
    return os.urandom(8).hex()


def bearer_token(request: Request) -> str | None:
    return credential_from(
        request.headers.get("authorization"), request.headers.get("x-vault-token")
    )


def credential_from(authorization: str | None, vault_token: str | None) -> str | None:
    """The presented credential: ``Authorization: Bearer``, else Vault clients'
    ``X-Vault-Token`` (another scheme, such as a proxy's ``Basic``, presents nothing and
    does not hide the Vault header)."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer":
            return value.strip()
    return vault_token


def source(request: Request) -> str:
    """The client's address (a trusted proxy's ``X-Forwarded-For``, see clientaddr)."""
    return client_host(request.scope)


async def context(request: Request) -> RequestContext:
    """Authenticate the caller; failures are audited and answered with one vague 401.

    Routes declare ``authenticated``/``needs(...)`` as dependencies so that a caller is
    refused before FastAPI validates the request body; this then returns the cached
    context.
    """
    cached: RequestContext | None = getattr(request.state, "ks_ctx", None)
    if cached is not None:
        return cached
    ctx = await authenticate(
        services(request),
        bearer_token(request),
        source(request),
        request_id(request),
        request.url.path,
        note_of(request.scope),
    )
    request.state.ks_ctx = ctx
    return ctx


def anonymous_route(route: str) -> Callable[[Request], Awaitable[None]]:
    """Dependency for a route anyone may call: one source address gets
    ``anonymous_rate_per_source`` requests to ``route`` (counted like every rate limit:
    Redis, else this node), then 429 until the window resets, before the body is read or
    anything is written. The first refusal of a burst is audited (not while sealed: the
    audit key is locked then; the refusal is still counted in the metrics)."""

    async def dependency(request: Request) -> None:
        svc = services(request)
        src = source(request)
        svc.throttle.check(src)
        refusal = svc.limits.check_anonymous(route, src)
        if refusal is None:
            return
        if svc.barrier.sealed:
            svc.metrics.rate_limited(refusal.scope)
            raise refusal.error()
        await refuse(svc, refusal, rid=request_id(request), actor="anonymous", src=src, path=route)

    return dependency


async def authenticated(request: Request) -> None:
    """Dependency: any valid credential (401 otherwise), checked before the body."""
    await context(request)


def needs(operation: str, resource: str | None = None) -> Callable[[Request], Awaitable[None]]:
    """Dependency factory: the caller must hold the administrative capability that
    ``operation`` needs (see ``admin_resource``), checked before the body (401/403,
    audited). The root token holds every capability."""

    async def dependency(request: Request) -> None:
        await needs_context(request, operation, resource)

    setattr(dependency, NEEDS_MARK, operation)  # the OpenAPI document reads it
    return dependency


# Administrative operations by area: the capability each needs and the ``sys/`` path a
# policy names to grant it. Persisted in people's policies: only ever add.
_AREA_CAPABILITY: dict[str, str] = {
    "key": "manage-keys",
    "usage": "read-audit",
    "audit": "read-audit",
    "metrics": "read-audit",
    "alert": "read-audit",
    "report": "read-audit",
    "incident": "read-audit",
}
# In the read-audit areas only these actions read; anything else (adding an alert hook,
# opening an incident) changes the vault's behaviour and needs ``admin``.
_READ_ACTIONS = frozenset({"read", "list", "show", "events", "verify", "query", "report"})


def admin_resource(operation: str) -> tuple[str, str]:
    """(capability, path) an administrative ``operation`` (``area:action``, as audit
    events name it) needs: the path is ``sys/<area>`` (``sys/<action>`` for ``sys:``
    operations such as ``sys:seal``); the capability is ``manage-keys`` for keys,
    ``read-audit`` to read audit, usage, metrics, alerts, incidents and reports, and
    ``admin`` for everything else."""
    area, _, action = operation.partition(":")
    if area == "sys":
        return "admin", f"sys/{action}"
    capability = _AREA_CAPABILITY.get(area, "admin")
    if capability == "read-audit" and action not in _READ_ACTIONS:
        capability = "admin"
    return capability, f"sys/{area}"


async def needs_context(
    request: Request, operation: str, resource: str | None = None
) -> RequestContext:
    """Like ``context`` but the caller must hold ``operation``'s capability on its
    ``sys/`` path (or ``resource`` when given, e.g. ``sys/keys/<service>``)."""
    ctx = await context(request)
    if ctx.principal.is_root:
        return ctx
    capability, path = admin_resource(operation)
    path = resource or path
    svc = services(request)
    decision = svc.authorizer.decide(ctx.principal, capability, path, ctx.source)
    if isinstance(decision, Deny):
        await record(
            svc,
            rid=ctx.request_id,
            actor=ctx.principal.token_id,
            src=ctx.source,
            operation=operation,
            path=path,
            detail=decision.reason,
        )
        raise denial(decision)
    return ctx


async def record(
    svc: Services,
    *,
    rid: str,
    actor: str,
    src: str,
    operation: str,
    path: str = "",
    outcome: str = OUTCOME_DENIED,
    detail: str = "",
) -> None:
    """Write one audit event now (group commit), failing closed like every other."""
    await svc.audit.record(
        AuditEvent(svc.clock.now_us(), rid, actor, src, operation, path[:512], outcome, detail)
    )


async def record_as(
    svc: Services,
    ctx: RequestContext,
    operation: str,
    *,
    outcome: str,
    path: str = "",
    detail: str = "",
) -> None:
    """``record`` for an event of the request's own caller (its id, source, token)."""
    await record(
        svc,
        rid=ctx.request_id,
        actor=ctx.principal.token_id,
        src=ctx.source,
        operation=operation,
        path=path,
        outcome=outcome,
        detail=detail,
    )


async def failed_proof(svc: Services, request: Request, operation: str) -> None:
    """Count a failed proof (password, TOTP) against the source address; audited when
    the address gets blocked. The API's and the console's sign-in share it."""
    src = source(request)
    if svc.throttle.failed(src):
        await record(
            svc,
            rid=request_id(request),
            actor="anonymous",
            src=src,
            operation="auth:throttle",
            path=operation,
            detail=f"source blocked for {svc.throttle.cooldown:.0f} s",
        )


async def authenticate(
    svc: Services,
    token: str | None,
    src: str,
    rid: str,
    path: str,
    note: RequestNote | None = None,
) -> RequestContext:
    """The request context for ``token``; raises Unauthenticated (audited), or
    RateLimited while the source is cooling down after too many failures, or over its
    per-source limit, or (an API key) over the key's own rate (the first refusal of a
    burst audited); a JWT or child token is held to its source key's rate. ``note``
    learns the caller, for usage and metrics."""
    svc.throttle.check(src)
    refusal = svc.limits.check_source(src)
    if refusal is not None:
        await refuse(svc, refusal, rid=rid, actor="anonymous", src=src, path=path)
    try:
        # Lookups may read the database on a cache miss: inline on SQLite, on a thread
        # with a bounded wait on PostgreSQL (a hung server gives 503, the loop runs on).
        if token is not None and token.startswith("ks_live_"):
            key = token
            principal = await svc.blocking.run(lambda: svc.keys.verify(key, src))
        elif token is not None and token.startswith("ks_sess_"):
            # A person's session: bounded like the others (a hung database gives 503).
            session = token
            principal = await svc.blocking.run(lambda: svc.users.sessions.verify(session, src))
        elif token is not None and token.count(".") == 2:
            # A short-lived access token from the client-credentials exchange (reads the
            # revocation list and, on a cache miss, its key: bounded like the others).
            jwt = token
            principal = await svc.blocking.run(lambda: svc.oauth.principal(jwt, src))
        else:
            presented = token
            principal = await svc.blocking.run(lambda: svc.tokens.authenticate(presented, src))
    except Forbidden as exc:
        # A live key used from outside its allowlist: the holder learns why.
        await record(
            svc,
            rid=rid,
            actor="anonymous",
            src=src,
            operation="auth:key",
            path=path,
            detail=exc.detail,
        )
        raise
    except Unauthenticated:
        await record(
            svc,
            rid=rid,
            actor="anonymous",
            src=src,
            operation="auth:token",
            path=path,
            detail="invalid token",
        )
        if svc.throttle.failed(src):
            await record(
                svc,
                rid=rid,
                actor="anonymous",
                src=src,
                operation="auth:throttle",
                path=path,
                detail=f"source blocked for {svc.throttle.cooldown:.0f} s",
            )
        raise
    if note is not None:
        note.caller(principal)
    if principal.source_key is not None:
        # A key's rate binds whatever derives from it: its JWTs and the tokens it minted.
        refusal = svc.limits.check_key(principal.source_key)
        if refusal is not None:
            await refuse(svc, refusal, rid=rid, actor=principal.token_id, src=src, path=path)
    return RequestContext(principal, src, rid)


async def audited_change(
    request: Request,
    operation: str,
    path: str,
    change: Callable[[Connection], T],
    detail: Callable[[T], str] = lambda _: "",
) -> T:
    """Run ``change`` in a write transaction (in a worker thread) together with its ok
    audit event, so that the change and its record commit or fail as one."""
    ctx = await context(request)
    svc = services(request)

    def run() -> T:
        with write_txn(svc.engine) as conn:
            result = change(conn)
            event = AuditEvent(
                svc.clock.now_us(),
                ctx.request_id,
                ctx.principal.token_id,
                ctx.source,
                operation,
                path[:512],
                OUTCOME_OK,
                detail(result),
            )
            svc.audit.append_in_txn(conn, [event])
        return result

    try:
        return await anyio.to_thread.run_sync(run)
    except Forbidden as exc:
        # A refusal decided inside the change (e.g. granting more than one holds): the
        # change rolled back; the attempt is audited like any other denial.
        await record(
            svc,
            rid=ctx.request_id,
            actor=ctx.principal.token_id,
            src=ctx.source,
            operation=operation,
            path=path,
            detail=exc.detail[:2000],
        )
        raise
