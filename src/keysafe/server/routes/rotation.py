"""``/api/v1/rotation``: rotation policies, their status, and rotating now.

Setting, reading, deleting a policy and rotating need ``rotate`` on the secret's path
(``command`` and ``webhook`` policies also ``admin`` on ``sys/rotation``; ``postgres``
and ``redis`` policies an approved target; ``apikey`` ones ``manage-keys`` on the key's
service); the status list needs ``list`` on the prefix. The approved network targets
(``/targets``) are listed, added and removed with ``admin`` on ``sys/rotation``. The
service authorises and audits; these routes only parse and shape replies.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from keysafe.server import deps
from keysafe.server.params import PositiveSeconds, Seconds
from keysafe.server.replies.rotation import (
    RotationPolicyDetail,
    RotationPolicyList,
    RotationRun,
    RotationTarget,
    RotationTargetList,
)
from keysafe.server.routes.sys import json_response

router = APIRouter(prefix="/api/v1/rotation", tags=["rotation"])


class PolicyBody(BaseModel):
    rotator: str = Field(max_length=64, description="random, apikey, webhook, command, ...")
    options: dict[str, str] = Field(default_factory=dict, description="the rotator's options")
    every_seconds: PositiveSeconds = Field(description="interval between rotations")
    grace_seconds: Seconds = Field(0, description="how long the previous value stays valid")
    approve_targets: bool = Field(
        False,
        description="an admin of sys/rotation approves the policy's network targets at once",
    )


class TargetBody(BaseModel):
    kind: Literal["postgres", "redis"] = Field(description="what listens there")
    host: str = Field(min_length=1, max_length=255, description="host name or IP address")
    port: int | None = Field(None, ge=1, le=65535, description="default 5432 / 6379")
    database: str = Field("", max_length=64, description="database name / Redis db number")
    roles: list[str] = Field(
        default_factory=list, max_length=64, description="logins rotators may change; [] any"
    )


@router.get(
    "/policies",
    dependencies=[Depends(deps.authenticated)],
    responses={200: {"model": RotationPolicyList}},
)
async def list_policies(request: Request, prefix: str = "") -> Response:
    """Every policy under ``prefix``: next due, last run, outcome, work in flight."""
    ctx = await deps.context(request)
    items = await deps.services(request).rotation.status(ctx, prefix)
    return json_response({"policies": items})


@router.put(
    "/policies/{path:path}",
    dependencies=[Depends(deps.authenticated)],
    responses={200: {"model": RotationPolicyDetail}},
)
async def set_policy(request: Request, path: str, body: PolicyBody) -> Response:
    """Create or replace the rotation policy of a secret."""
    ctx = await deps.context(request)
    doc = await deps.services(request).rotation.set_policy(
        ctx,
        path,
        rotator=body.rotator,
        options=dict(body.options),
        every_seconds=body.every_seconds,
        grace_seconds=body.grace_seconds,
        approve_targets=body.approve_targets,
    )
    return json_response(doc)


@router.get(
    "/policies/{path:path}",
    dependencies=[Depends(deps.authenticated)],
    responses={200: {"model": RotationPolicyDetail}},
)
async def get_policy(request: Request, path: str) -> Response:
    """One policy's status and its latest runs."""
    ctx = await deps.context(request)
    return json_response(await deps.services(request).rotation.get_policy(ctx, path))


@router.delete("/policies/{path:path}", status_code=204, dependencies=[Depends(deps.authenticated)])
async def delete_policy(request: Request, path: str) -> Response:
    """Stop rotating a secret (409 while a rotation of it is in flight)."""
    ctx = await deps.context(request)
    await deps.services(request).rotation.delete_policy(ctx, path)
    return Response(status_code=204)


@router.post(
    "/rotate/{path:path}",
    dependencies=[Depends(deps.authenticated)],
    responses={200: {"model": RotationRun}},
)
async def rotate(request: Request, path: str) -> Response:
    """Rotate now, out of schedule: the run (200), 409 if one is running, 502 if the
    target refused or failed a step (the problem document carries the run)."""
    ctx = await deps.context(request)
    return json_response(await deps.services(request).rotation.rotate(ctx, path))


@router.get(
    "/targets",
    dependencies=[Depends(deps.authenticated)],
    responses={200: {"model": RotationTargetList}},
)
async def list_targets(request: Request) -> Response:
    """The network targets an admin approved for rotators."""
    ctx = await deps.context(request)
    return json_response({"targets": await deps.services(request).rotation.targets.list(ctx)})


@router.post(
    "/targets",
    dependencies=[Depends(deps.authenticated)],
    responses={200: {"model": RotationTarget}},
)
async def add_target(request: Request, body: TargetBody) -> Response:
    """Approve a network target (or replace its roles)."""
    ctx = await deps.context(request)
    doc = await deps.services(request).rotation.targets.add(
        ctx,
        kind=body.kind,
        host=body.host,
        port=body.port,
        database=body.database,
        roles=body.roles,
    )
    return json_response(doc)


@router.delete("/targets/{target_id}", status_code=204, dependencies=[Depends(deps.authenticated)])
async def remove_target(request: Request, target_id: str) -> Response:
    """Withdraw an approval: rotators stop connecting there at their next step."""
    ctx = await deps.context(request)
    await deps.services(request).rotation.targets.remove(ctx, target_id)
    return Response(status_code=204)
