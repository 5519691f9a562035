"""``/api/v1/policies``, ``/api/v1/services``, ``/api/v1/keys``: least-privilege admin.

Policies and services need ``admin`` on ``sys/policy`` and ``sys/service``; keys need
``manage-keys`` on ``sys/key/<service>``, so a team can hold the keys of its own services
only. Nobody hands out more than they hold: writing a policy, creating a service, issuing
or rolling a key also needs every capability the policies involved grant, on every path
(403 naming the first one missing). The root token holds every capability. Every change
is audited in the same transaction.
"""

from __future__ import annotations

from typing import TypeVar

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from keysafe.access.apikeys import SUSPEND_REASON_MAX, parse_duration
from keysafe.access.grants import holder_of
from keysafe.errors import InvalidInput, NotFound
from keysafe.server import deps
from keysafe.server.openapi import json_body
from keysafe.server.replies.access import (
    KeyIssued,
    KeyList,
    KeyRecord,
    PolicyCheckReply,
    PolicyList,
    PolicyRecord,
    PolicyWritten,
    ServiceList,
    ServiceRecord,
)
from keysafe.server.routes.sys import json_response
from keysafe.server.services import Services

router = APIRouter(prefix="/api/v1", tags=["access"])
_Body = TypeVar("_Body", bound=BaseModel)


class PolicyBody(BaseModel):
    text: str = Field(max_length=256 * 1024)


class ServiceBody(BaseModel):
    name: str = Field(max_length=128)
    policies: list[str] = Field(default_factory=list, max_length=64)
    description: str = Field("", max_length=1024)


class KeyBody(BaseModel):
    service: str = Field(max_length=128)
    policies: list[str] | None = Field(None, max_length=64)
    cidrs: list[str] = Field(default_factory=list, max_length=256)
    expires_in: str | None = Field(None, description="e.g. 90d; default and maximum apply")
    rate_limit: str | None = Field(None, max_length=32)
    description: str = Field("", max_length=1024)


class RollBody(BaseModel):
    grace: str = Field("24h", description="how long the old key keeps working")


class SuspendBody(BaseModel):
    reason: str = Field("", max_length=SUSPEND_REASON_MAX, description="why, for the record")


class CheckBody(BaseModel):
    key_id: str | None = None
    policies: list[str] | None = None
    path: str = Field(max_length=512)
    capability: str = Field("read", max_length=32)
    source: str = Field("127.0.0.1", max_length=64)


async def _admin(request: Request, op: str, resource: str | None = None) -> tuple[Services, str]:
    ctx = await deps.needs_context(request, op, resource)
    return deps.services(request), ctx.principal.token_id


async def _holder(request: Request) -> tuple[str, ...] | None:
    """The caller's policy names for the grant checks (None: the root token)."""
    return holder_of((await deps.context(request)).principal)


def _keys_of(service: str) -> str:
    return f"sys/key/{service}"


async def _key_admin(request: Request, op: str, key_id: str) -> tuple[Services, str]:
    """Check ``manage-keys`` on the key's own service; an unknown key id is refused
    like a key of a service the caller may not manage (no probing for ids)."""
    svc = deps.services(request)
    try:
        owner = await anyio.to_thread.run_sync(svc.keys.service_of, key_id)
    except NotFound:
        await deps.needs_context(request, op)  # only those who may see every key learn 404
        raise
    return await _admin(request, op, _keys_of(owner))


# -- policies -------------------------------------------------------------------------


@router.put(
    "/policies/{name}",
    dependencies=[Depends(deps.needs("policy:write"))],
    responses={200: {"model": PolicyWritten}},
)
async def write_policy(request: Request, name: str, body: PolicyBody) -> Response:
    """Create or replace a policy; a syntax error names its line (400)."""
    svc, actor = await _admin(request, "policy:write")
    holder = await _holder(request)

    result = await deps.audited_change(
        request,
        "policy:write",
        name,
        lambda conn: svc.policies.write(conn, name, body.text, actor, holder=holder),
        lambda result: f"{result['rules']} rules",
    )
    return json_response(result)


@router.get(
    "/policies",
    dependencies=[Depends(deps.needs("policy:list"))],
    responses={200: {"model": PolicyList}},
)
async def list_policies(request: Request) -> Response:
    svc, _ = await _admin(request, "policy:list")
    return json_response({"policies": await anyio.to_thread.run_sync(svc.policies.list_policies)})


@router.get(
    "/policies/{name}",
    dependencies=[Depends(deps.needs("policy:read"))],
    responses={200: {"model": PolicyRecord}},
)
async def read_policy(request: Request, name: str) -> Response:
    svc, _ = await _admin(request, "policy:read")
    return json_response(await anyio.to_thread.run_sync(svc.policies.get, name))


@router.delete(
    "/policies/{name}", status_code=204, dependencies=[Depends(deps.needs("policy:delete"))]
)
async def delete_policy(request: Request, name: str) -> Response:
    svc, _ = await _admin(request, "policy:delete")

    await deps.audited_change(
        request, "policy:delete", name, lambda conn: svc.policies.delete(conn, name)
    )
    return Response(status_code=204)


@router.post(
    "/policy-check",
    dependencies=[Depends(deps.needs("policy:check"))],
    responses={200: {"model": PolicyCheckReply}},
)
async def check_policy(request: Request, body: CheckBody) -> Response:
    """Explain the decision for a key (or a list of policies) on a path and capability."""
    svc, _ = await _admin(request, "policy:check")
    if body.key_id:
        names = tuple((await anyio.to_thread.run_sync(svc.keys.show, body.key_id))["policies"])
    elif body.policies is not None:
        names = tuple(body.policies)
    else:
        raise InvalidInput("give key_id or policies")
    explanation = svc.policies.policy_set(names).explain(
        svc.authorizer.request(body.capability, body.path, body.source)
    )
    return json_response(
        {
            "allowed": bool(explanation.decision),
            "reason": explanation.decision.reason,
            "deciding_rule": explanation.deciding,
            "mfa_required_within_minutes": explanation.mfa_required_within,
            "rules": [
                {"rule": o.label, "applies": o.applies, "note": o.note}
                for o in explanation.outcomes
            ],
        }
    )


# -- services -------------------------------------------------------------------------


@router.post(
    "/services",
    dependencies=[Depends(deps.needs("service:create"))],
    responses={200: {"model": ServiceRecord}},
)
async def create_service(request: Request, body: ServiceBody) -> Response:
    svc, actor = await _admin(request, "service:create")
    holder = await _holder(request)

    record = await deps.audited_change(
        request,
        "service:create",
        body.name,
        lambda conn: svc.keys.create_service(
            conn, body.name, body.policies, body.description, actor, holder=holder
        ),
        lambda record: str(record["id"]),
    )
    return json_response(record)


@router.get(
    "/services",
    dependencies=[Depends(deps.needs("service:list"))],
    responses={200: {"model": ServiceList}},
)
async def list_services(request: Request) -> Response:
    svc, _ = await _admin(request, "service:list")
    return json_response({"services": await anyio.to_thread.run_sync(svc.keys.list_services)})


# -- keys -----------------------------------------------------------------------------


@router.post(
    "/keys",
    dependencies=[Depends(deps.authenticated)],
    responses={200: {"model": KeyIssued}},
)
async def create_key(request: Request, body: KeyBody) -> Response:
    """Issue a key; the key itself is in this reply only."""
    svc, actor = await _admin(request, "key:create", _keys_of(body.service))
    holder = await _holder(request)
    expires = parse_duration(body.expires_in) if body.expires_in else None

    issued = await deps.audited_change(
        request,
        "key:create",
        body.service,
        lambda conn: svc.keys.create(
            conn,
            service=body.service,
            policy_names=body.policies,
            cidrs=body.cidrs,
            expires_in_seconds=expires,
            rate_limit=body.rate_limit,
            description=body.description,
            creator=actor,
            holder=holder,
        ),
        lambda issued: str(issued.record["id"]),
    )
    return json_response({**issued.record, "key": issued.key})


@router.get(
    "/keys",
    dependencies=[Depends(deps.authenticated)],
    responses={200: {"model": KeyList}},
)
async def list_keys(
    request: Request, service: str | None = None, unused_for: str | None = None
) -> Response:
    # Every key needs manage-keys on sys/key; one service's keys, on sys/key/<service>.
    svc, _ = await _admin(request, "key:list", _keys_of(service) if service else None)
    unused = parse_duration(unused_for) if unused_for else None
    keys = await anyio.to_thread.run_sync(
        lambda: svc.keys.list_keys(service=service, unused_for_seconds=unused)
    )
    return json_response({"keys": keys})


@router.get(
    "/keys/{key_id}",
    dependencies=[Depends(deps.authenticated)],
    responses={200: {"model": KeyRecord}},
)
async def show_key(request: Request, key_id: str) -> Response:
    svc, _ = await _key_admin(request, "key:read", key_id)
    return json_response(await anyio.to_thread.run_sync(svc.keys.show, key_id))


# One documented operation per verb; one handler reads the verb from the path.
@router.post(
    "/keys/{key_id}:roll",
    operation_id="access_roll_key",
    dependencies=[Depends(deps.authenticated)],
    responses={200: {"model": KeyIssued}},
    openapi_extra=json_body(RollBody),
)
@router.post(
    "/keys/{key_id}:suspend",
    operation_id="access_suspend_key",
    dependencies=[Depends(deps.authenticated)],
    responses={200: {"model": KeyRecord}},
    openapi_extra=json_body(SuspendBody),
)
@router.post(
    "/keys/{key_id}:resume",
    operation_id="access_resume_key",
    dependencies=[Depends(deps.authenticated)],
    responses={200: {"model": KeyRecord}},
)
@router.post("/keys/{key_id}", include_in_schema=False, dependencies=[Depends(deps.authenticated)])
async def key_action(request: Request, key_id: str) -> Response:
    """``{id}:roll`` with ``{"grace": "24h"}``: a successor, the old key dies after grace.
    ``{id}:suspend`` with ``{"reason"?}``: the key is refused like a revoked one until
    ``{id}:resume``. Each needs ``manage-keys`` on the key's service, like revoking."""
    key_id, _, verb = request.url.path.rsplit("/", 1)[-1].partition(":")
    if verb not in ("roll", "suspend", "resume"):
        raise NotFound("POST is only defined on keys/{id}:roll, :suspend and :resume")
    svc, actor = await _key_admin(request, f"key:{verb}", key_id)
    if verb == "suspend":
        reason = (await _body(request, SuspendBody)).reason
        record = await deps.audited_change(
            request,
            "key:suspend",
            "",
            lambda conn: svc.keys.suspend(conn, key_id, reason),
            lambda _: f"{key_id} suspended" + (f": {reason}" if reason else ""),
        )
        return json_response(record)
    if verb == "resume":
        record = await deps.audited_change(
            request,
            "key:resume",
            "",
            lambda conn: svc.keys.resume(conn, key_id),
            lambda _: f"{key_id} resumed",
        )
        return json_response(record)
    grace_text = (await _body(request, RollBody)).grace
    grace = parse_duration(grace_text) if grace_text not in ("0", "0s") else 0
    holder = await _holder(request)

    issued = await deps.audited_change(
        request,
        "key:roll",
        "",
        lambda conn: svc.keys.roll(conn, key_id, grace, actor, holder=holder),
        lambda issued: f"{key_id} -> {issued.record['id']}",
    )
    return json_response({**issued.record, "key": issued.key})


async def _body(request: Request, model: type[_Body]) -> _Body:
    """The request's JSON body as ``model`` (an empty body is ``{}``)."""
    try:
        return model.model_validate_json(await request.body() or b"{}")
    except ValueError as exc:
        raise InvalidInput(f"invalid request body: {exc}") from exc


@router.delete("/keys/{key_id}", status_code=204, dependencies=[Depends(deps.authenticated)])
async def revoke_key(request: Request, key_id: str) -> Response:
    svc, _ = await _key_admin(request, "key:revoke", key_id)
    await deps.audited_change(
        request, "key:revoke", "", lambda conn: svc.keys.revoke(conn, key_id), lambda _: key_id
    )
    return Response(status_code=204)
