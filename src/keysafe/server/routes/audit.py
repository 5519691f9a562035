"""``/api/v1/audit``: verify the chain, page through events."""

from __future__ import annotations

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from keysafe.access.models import RequestContext
from keysafe.audit.models import OUTCOME_OK
from keysafe.server import deps
from keysafe.server.params import CursorQuery
from keysafe.server.replies.monitor import AuditEventList, AuditVerifyReply
from keysafe.server.routes.sys import json_response
from keysafe.server.services import Services

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


@router.post(
    "/verify",
    dependencies=[Depends(deps.needs("audit:verify"))],
    responses={200: {"model": AuditVerifyReply}},
)
async def verify(
    request: Request,
    source: str = "db",
    file: str | None = Query(None, max_length=255, description="source=file: a node's file"),
) -> Response:
    """Walk every chain (``source=db``) or a node's audit file (``source=file``: this
    node's, or ``file``, another node's file in this node's audit directory) and report
    each chain, naming the first bad event."""
    ctx = await deps.needs_context(request, "audit:verify")
    svc = deps.services(request)
    if source == "file":
        named = None if file is None else await anyio.to_thread.run_sync(svc.audit.node_file, file)
        result = await anyio.to_thread.run_sync(svc.audit.verify_file, named)
    else:
        result = await anyio.to_thread.run_sync(svc.audit.verify)
    # Verifying is audited too, after the walk (which so sees the trail as it was, and
    # whose outcome is recorded) and before answering: an unwritable trail refuses.
    outcome = "intact" if result.ok else f"broken at event {result.first_bad}"
    where = "db" if source != "file" else "file" if file is None else f"file {file}"
    await _audit_read(svc, ctx, "audit:verify", f"source={where}: {outcome}")
    doc: dict[str, object] = {"ok": result.ok, "events": result.events}
    if not result.ok:
        doc.update(first_bad=result.first_bad, reason=result.reason, chain=result.chain or "root")
    doc["chains"] = [c.as_json() for c in result.chains]
    return json_response(doc)


@router.get(
    "/events",
    dependencies=[Depends(deps.needs("audit:read"))],
    responses={200: {"model": AuditEventList}},
)
async def events(
    request: Request, after: CursorQuery = 0, limit: int = Query(100, ge=1, le=1000)
) -> Response:
    ctx = await deps.needs_context(request, "audit:read")
    svc = deps.services(request)
    rows = await anyio.to_thread.run_sync(lambda: svc.audit.events(after, limit))
    # Audited after the read (the page shows the trail as it was) and before answering.
    await _audit_read(svc, ctx, "audit:events", f"after={after} limit={limit}")
    return json_response({"events": [c.as_json() for c in rows]})


async def _audit_read(svc: Services, ctx: RequestContext, operation: str, detail: str) -> None:
    await deps.record_as(
        svc,
        ctx,
        operation,
        path="sys/audit",
        outcome=OUTCOME_OK,
        detail=detail,
    )
