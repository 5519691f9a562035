"""``/api/v1/creds`` and ``/api/v1/leases``: temporary database logins and their leases.

Issuing needs ``read`` on ``creds/<role>``; renewing or revoking one lease needs the same
on its role, or ``admin`` on ``sys/lease``. Role configuration needs ``admin`` on
``sys/creds`` plus ``read`` on the connection secret it names and on ``creds/<role>``
(nobody hands out more than they hold); listing leases and
revoking by prefix need ``admin`` on ``sys/lease``. The root token holds all of these.
"""

from __future__ import annotations

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from keysafe.access.models import Deny, denial
from keysafe.audit.models import OUTCOME_DENIED
from keysafe.errors import InvalidInput
from keysafe.rotation import lease_models as m
from keysafe.rotation.dynamic import MAX_GRANTS
from keysafe.server import deps
from keysafe.server.params import PositiveSeconds
from keysafe.server.replies.leases import (
    CredsRole,
    CredsRoleList,
    IssuedLogin,
    LeaseList,
    LeaseRenewed,
    LeaseRevoked,
    PrefixRevoked,
)
from keysafe.server.routes.sys import json_response

router = APIRouter(prefix="/api/v1", tags=["leases"])

_STATES = {m.STATE_ACTIVE, m.STATE_REVOKED, m.STATE_EXPIRED, m.STATE_REVOKE_FAILED}


class RoleBody(BaseModel):
    connection_secret: str = Field(max_length=512, description="secret holding the admin URL")
    grants: list[str] = Field(default_factory=list, max_length=MAX_GRANTS)
    ttl: PositiveSeconds | None = Field(None, description="default lease length, seconds")
    max_ttl: PositiveSeconds | None = Field(None, description="no renewal goes past this, seconds")
    engine: str = Field(m.ENGINE_POSTGRES, max_length=32)


class IssueBody(BaseModel):
    ttl: PositiveSeconds | None = Field(None, description="seconds; capped at the role's max TTL")


class RenewBody(BaseModel):
    increment: PositiveSeconds | None = Field(
        None, description="seconds from now; capped at the max"
    )


class PrefixBody(BaseModel):
    prefix: str = Field(max_length=256)


# -- roles ------------------------------------------------------------------------------


@router.put(
    "/creds/roles/{name:path}",
    dependencies=[Depends(deps.needs("creds:role-write"))],
    responses={200: {"model": CredsRole}},
)
async def write_role(request: Request, name: str, body: RoleBody) -> Response:
    """Create or replace a role; the writer must be able to read its connection secret."""
    ctx = await deps.needs_context(request, "creds:role-write")
    svc = deps.services(request)
    config = m.RoleConfig.checked(
        name,
        connection_secret=body.connection_secret,
        grants=body.grants,
        default_ttl=body.ttl,
        max_ttl=body.max_ttl,
        engine=body.engine,
    )
    # Nobody hands out more than they hold. Without the first check an administrator of
    # roles could have logins made with any secret; a role hands whoever may read
    # ``creds/<name>`` logins made with that secret, so its writer must hold that too.
    for what, path in (
        ("connection secret", config.connection_secret),
        ("issuing from the role", m.CREDS_PREFIX + name),
    ):
        decision = svc.authorizer.decide(ctx.principal, "read", path, ctx.source)
        if isinstance(decision, Deny):
            await deps.record_as(
                svc,
                ctx,
                "creds:role-write",
                outcome=OUTCOME_DENIED,
                path=name,
                detail=f"{what}: {decision.reason}",
            )
            raise denial(decision)
    now = svc.clock.now_us()
    result = await deps.audited_change(
        request,
        "creds:role-write",
        m.CREDS_PREFIX + name,
        lambda conn: m.write_role(conn, config, ctx.principal.token_id, now),
        lambda c: (
            f"secret {c.connection_secret}, {len(c.grants)} grants, ttl {c.default_ttl}s"
            f", max {c.max_ttl}s"
        ),
    )
    return json_response(result.to_json())


@router.get(
    "/creds/roles",
    dependencies=[Depends(deps.needs("creds:role-list"))],
    responses={200: {"model": CredsRoleList}},
)
async def list_roles(request: Request) -> Response:
    await deps.needs_context(request, "creds:role-list")
    svc = deps.services(request)

    def run() -> list[m.RoleConfig]:
        from keysafe.store.engine import read_conn

        with read_conn(svc.engine) as conn:
            return m.list_roles(conn)

    roles = await anyio.to_thread.run_sync(run)
    return json_response({"roles": [r.to_json() for r in roles]})


@router.get(
    "/creds/roles/{name:path}",
    dependencies=[Depends(deps.needs("creds:role-read"))],
    responses={200: {"model": CredsRole}},
)
async def read_role(request: Request, name: str) -> Response:
    await deps.needs_context(request, "creds:role-read")
    svc = deps.services(request)
    return json_response((await anyio.to_thread.run_sync(svc.leases.role, name)).to_json())


@router.delete(
    "/creds/roles/{name:path}",
    status_code=204,
    dependencies=[Depends(deps.needs("creds:role-delete"))],
)
async def delete_role(request: Request, name: str) -> Response:
    """Delete a role; 409 while it has live leases."""
    await deps.needs_context(request, "creds:role-delete")
    await deps.audited_change(
        request,
        "creds:role-delete",
        m.CREDS_PREFIX + name,
        lambda conn: m.delete_role(conn, name),
    )
    return Response(status_code=204)


# -- credentials and leases -------------------------------------------------------------


@router.post(
    "/creds/{name:path}",
    status_code=201,
    dependencies=[Depends(deps.authenticated)],
    responses={201: {"model": IssuedLogin}},
)
async def issue(request: Request, name: str, body: IssueBody | None = None) -> Response:
    """A new login with its lease: ``{username, password, lease_id, expires_at, ...}``.
    The password is in this answer only."""
    ctx = await deps.context(request)
    ttl = body.ttl if body is not None else None
    issued = await deps.services(request).leases.issue(ctx, name, ttl)
    return json_response(issued.to_json(), status=201)


@router.get(
    "/leases",
    dependencies=[Depends(deps.needs("lease:list"))],
    responses={200: {"model": LeaseList}},
)
async def list_leases(
    request: Request,
    prefix: str = "",
    state: str | None = None,
    limit: int = Query(1000, ge=1, le=10000),
) -> Response:
    ctx = await deps.needs_context(request, "lease:list")
    if state is not None and state not in _STATES:
        raise InvalidInput(f"state must be one of {sorted(_STATES)}")
    svc = deps.services(request)
    rows = await anyio.to_thread.run_sync(
        lambda: svc.leases.list_leases(prefix, state, max(1, min(limit, 10000)))
    )
    await deps.record_as(
        svc,
        ctx,
        "lease:list",
        path=m.CREDS_PREFIX + prefix,
        outcome="ok",
        detail=f"{len(rows)} leases",
    )
    return json_response({"leases": [r.to_json() for r in rows]})


@router.post(
    "/leases/revoke-prefix",
    dependencies=[Depends(deps.needs("lease:revoke-prefix"))],
    responses={200: {"model": PrefixRevoked}},
)
async def revoke_prefix(request: Request, body: PrefixBody) -> Response:
    """Revoke every live lease of the roles under ``prefix`` in one call."""
    ctx = await deps.needs_context(request, "lease:revoke-prefix")
    return json_response(await deps.services(request).leases.revoke_prefix(ctx, body.prefix))


@router.post(
    "/leases/{lease_id}/renew",
    dependencies=[Depends(deps.authenticated)],
    responses={200: {"model": LeaseRenewed}},
)
async def renew(request: Request, lease_id: str, body: RenewBody | None = None) -> Response:
    ctx = await deps.context(request)
    increment = body.increment if body is not None else None
    return json_response(await deps.services(request).leases.renew(ctx, lease_id, increment))


@router.delete(
    "/leases/{lease_id}",
    dependencies=[Depends(deps.authenticated)],
    responses={200: {"model": LeaseRevoked}},
)
async def revoke(request: Request, lease_id: str) -> Response:
    ctx = await deps.context(request)
    return json_response(await deps.services(request).leases.revoke(ctx, lease_id))
