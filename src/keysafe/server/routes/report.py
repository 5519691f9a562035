"""``/api/v1/report``: the compliance report (JSON, Markdown or a self-contained HTML
page). Needs ``read-audit`` on ``sys/report``; every report is audited."""

from __future__ import annotations

from typing import Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from keysafe.audit.models import OUTCOME_OK
from keysafe.incident.compliance_render import to_html, to_markdown
from keysafe.server import deps
from keysafe.server.replies.incidents import ComplianceReport
from keysafe.server.routes.sys import json_response

router = APIRouter(prefix="/api/v1", tags=["report"])

# The HTML page loads nothing and runs nothing; say so to the browser as well.
_HTML_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
}


@router.get(
    "/report",
    dependencies=[Depends(deps.needs("report:read"))],
    responses={
        200: {
            "model": ComplianceReport,
            "description": "JSON, or Markdown or HTML with ?format=md|html",
            "content": {
                "text/markdown": {"schema": {"type": "string"}},
                "text/html": {"schema": {"type": "string"}},
            },
        }
    },
)
async def compliance_report(
    request: Request,
    format: Literal["json", "md", "html"] = Query("json"),
    unused_days: int = Query(30, ge=1, le=3650),
    expiring_days: int = Query(30, ge=1, le=3650),
) -> Response:
    """Secrets (age, last change, expiry, rotation), keys (expiry, address limits,
    wildcard policies, use), tokens without expiry, people without MFA."""
    ctx = await deps.needs_context(request, "report:read")
    svc = deps.services(request)
    report = await anyio.to_thread.run_sync(
        lambda: svc.compliance.build(
            svc.clock.now_us(), unused_days=unused_days, expiring_days=expiring_days
        )
    )
    await deps.record_as(
        svc,
        ctx,
        "report:read",
        outcome=OUTCOME_OK,
        detail=f"compliance report ({format})",
    )
    if format == "md":
        return Response(to_markdown(report), media_type="text/markdown; charset=utf-8")
    if format == "html":
        return Response(
            to_html(report), media_type="text/html; charset=utf-8", headers=_HTML_HEADERS
        )
    return json_response(report.as_json())
