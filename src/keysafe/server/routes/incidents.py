"""``/api/v1/incidents``: open (or dry-run), list, show, report and close incidents.

Opening and closing need ``admin`` on ``sys/incident``; listing, showing and reports
need ``read-audit`` there (see ``deps.admin_resource``). Every call is audited: the
playbook's steps as ``incident:<phase>``, reads and dry runs as their own events.
"""

from __future__ import annotations

from typing import Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from keysafe.access.models import RequestContext
from keysafe.audit.models import OUTCOME_OK
from keysafe.incident.report import report_json, report_markdown
from keysafe.incident.resolve import Finding, Named
from keysafe.server import deps
from keysafe.server.params import Counter
from keysafe.server.replies.incidents import (
    IncidentDetail,
    IncidentList,
    IncidentPlan,
    IncidentRecord,
    IncidentReport,
)
from keysafe.server.routes.sys import json_response

router = APIRouter(prefix="/api/v1", tags=["incidents"])

_Id = Field(max_length=64)


class FindingBody(BaseModel):
    """One scan finding (``keysafe scan --format json --show-secrets``): the leaked text
    itself is needed to recognise it; it is never stored."""

    secret: str = Field(min_length=1, max_length=8192)
    rule: str = Field("", max_length=128)
    file: str = Field("", max_length=1024)
    line: Counter = 0


class OpenBody(BaseModel):
    title: str = Field("", max_length=200)
    keys: list[str] = Field(default_factory=list, max_length=200)
    tokens: list[str] = Field(default_factory=list, max_length=200)
    secrets: list[str] = Field(default_factory=list, max_length=200)
    leases: list[str] = Field(default_factory=list, max_length=200)
    findings: list[FindingBody] = Field(default_factory=list, max_length=200)
    dry_run: bool = False


@router.post(
    "/incidents",
    status_code=201,
    dependencies=[Depends(deps.needs("incident:open"))],
    responses={
        201: {"model": IncidentRecord},
        200: {"model": IncidentPlan, "description": "dry_run: the plan, nothing done"},
    },
)
async def open_incident(request: Request, body: OpenBody) -> Response:
    """Open an incident and run its playbook; with ``dry_run`` only show the plan."""
    ctx = await deps.needs_context(request, "incident:open")
    svc = deps.services(request)
    named = Named(
        keys=tuple(k[:64] for k in body.keys),
        tokens=tuple(t[:64] for t in body.tokens),
        secrets=tuple(body.secrets),
        leases=tuple(lease[:64] for lease in body.leases),
        findings=tuple(Finding(f.secret, f.rule, f.file, f.line) for f in body.findings),
    )
    exposure = await svc.incidents.resolve(named, ctx)
    actor = ctx.principal.token_id
    if body.dry_run:
        plan = await anyio.to_thread.run_sync(lambda: svc.incidents.plan(exposure, actor))
        await deps.record(
            svc,
            rid=ctx.request_id,
            actor=actor,
            src=ctx.source,
            operation="incident:plan",
            outcome=OUTCOME_OK,
            detail=f"dry run: {len(plan['plan'])} steps for {len(exposure.items)} items",
        )
        return json_response(plan)
    incident = await anyio.to_thread.run_sync(
        lambda: svc.incidents.open(
            exposure,
            title=body.title,
            origin="api",
            actor=actor,
            source=ctx.source,
            request_id=ctx.request_id,
            ctx=ctx,
        )
    )
    return json_response(incident.as_json(), status=201)


@router.get(
    "/incidents",
    dependencies=[Depends(deps.needs("incident:list"))],
    responses={200: {"model": IncidentList}},
)
async def list_incidents(
    request: Request, status: Literal["open", "closed"] | None = None
) -> Response:
    ctx = await deps.needs_context(request, "incident:list")
    svc = deps.services(request)
    found = await anyio.to_thread.run_sync(lambda: svc.incidents.list_incidents(status))
    await _audit_read(request, ctx, "incident:list", "")
    return json_response({"incidents": found})


@router.get(
    "/incidents/{incident_id}",
    dependencies=[Depends(deps.needs("incident:show"))],
    responses={200: {"model": IncidentDetail}},
)
async def show_incident(request: Request, incident_id: str) -> Response:
    """The incident, its steps and its timeline (steps plus touching audit events)."""
    ctx = await deps.needs_context(request, "incident:show")
    svc = deps.services(request)

    def run() -> dict[str, object]:
        incident = svc.incidents.get(incident_id)
        doc = incident.as_json()
        doc["timeline"] = [e.as_json() for e in svc.incidents.timeline(incident_id)]
        return doc

    doc = await anyio.to_thread.run_sync(run)
    await _audit_read(request, ctx, "incident:show", incident_id)
    return json_response(doc)


@router.get(
    "/incidents/{incident_id}/report",
    dependencies=[Depends(deps.needs("incident:report"))],
    responses={
        200: {
            "model": IncidentReport,
            "description": "JSON, or Markdown with ?format=md",
            "content": {"text/markdown": {"schema": {"type": "string"}}},
        }
    },
)
async def incident_report(
    request: Request,
    incident_id: str,
    format: Literal["md", "json"] = Query("json"),
) -> Response:
    """What leaked, what was done, when and by whom: Markdown or JSON."""
    ctx = await deps.needs_context(request, "incident:report")
    svc = deps.services(request)

    def run() -> Response:
        incident = svc.incidents.get(incident_id)
        timeline = svc.incidents.timeline(incident_id)
        now = svc.clock.now_us()
        if format == "md":
            text = report_markdown(incident, timeline, now)
            return Response(text, media_type="text/markdown; charset=utf-8")
        return json_response(report_json(incident, timeline, now))

    response = await anyio.to_thread.run_sync(run)
    await _audit_read(request, ctx, "incident:report", incident_id)
    return response


@router.post(
    "/incidents/{incident_id}/close",
    dependencies=[Depends(deps.needs("incident:close"))],
    responses={200: {"model": IncidentRecord}},
)
async def close_incident(request: Request, incident_id: str) -> Response:
    ctx = await deps.needs_context(request, "incident:close")
    svc = deps.services(request)
    incident = await anyio.to_thread.run_sync(
        lambda: svc.incidents.close(incident_id, ctx.principal.token_id, ctx.source, ctx.request_id)
    )
    return json_response(incident.as_json())


async def _audit_read(request: Request, ctx: RequestContext, operation: str, path: str) -> None:
    await deps.record_as(
        deps.services(request),
        ctx,
        operation,
        path=path,
        outcome=OUTCOME_OK,
    )
