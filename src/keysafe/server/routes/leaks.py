"""Leak reports and the digests behind ``keysafe scan --known``.

``POST /api/v1/leaks`` takes two kinds of report:

- unsigned ``{"credentials": [{"credential", "location"}]}`` (``keysafe scan --report``):
  no token needed, the report carries the credential itself;
- signed partner reports in GitHub's secret-scanning shape (a JSON array, with the
  ``Github-Public-Key-Identifier`` and ``Github-Public-Key-Signature`` headers), verified
  against ``leak_report_keys``. A partner-shaped report without a valid signature is
  refused (401, audited), a replay too (409, audited).
"""

from __future__ import annotations

import base64

import anyio.to_thread
import orjson
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field, ValidationError
from starlette.responses import Response

from keysafe.audit.models import OUTCOME_DENIED
from keysafe.errors import InvalidInput, Unauthenticated
from keysafe.incident.leaks import LeakReport
from keysafe.server import deps
from keysafe.server.openapi import inline_schema
from keysafe.server.replies.exchange import KnownDigests, LeakReportReply, PartnerFeedback
from keysafe.server.routes.sys import json_response

router = APIRouter(prefix="/api/v1", tags=["leaks"])

KEY_ID_HEADER = "github-public-key-identifier"
SIGNATURE_HEADER = "github-public-key-signature"


class ReportedCredential(BaseModel):
    credential: str = Field(max_length=256)
    location: str = Field("", max_length=1024)


class LeakReportBody(BaseModel):
    credentials: list[ReportedCredential]


class KnownDigestsBody(BaseModel):
    prefix: str = Field("", max_length=512)


@router.post(
    "/leaks",
    dependencies=[Depends(deps.anonymous_route("leaks"))],
    responses={
        200: {
            "description": "The results and incident; a signed partner report: its feedback",
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            inline_schema(LeakReportReply),
                            {"type": "array", "items": inline_schema(PartnerFeedback)},
                        ]
                    }
                }
            },
        }
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            inline_schema(LeakReportBody),
                            {
                                "type": "array",
                                "description": "a partner's report (GitHub's shape), signed",
                                "items": {"type": "object"},
                            },
                        ]
                    }
                }
            },
        }
    },
)
async def report_leaks(request: Request) -> Response:
    """Revoke reported keysafe credentials and open an incident for them. Unsigned
    reports need no token (only a holder or a finder of the credential can send it);
    partner reports must carry a valid signature."""
    svc = deps.services(request)
    src, rid = deps.source(request), deps.request_id(request)
    body = await request.body()
    identifier = request.headers.get(KEY_ID_HEADER)
    signature = request.headers.get(SIGNATURE_HEADER)
    if identifier is not None or signature is not None:
        feedback = await anyio.to_thread.run_sync(
            lambda: svc.leaks.partner_report(body, identifier or "", signature or "", src, rid)
        )
        return json_response(feedback)
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput("the report is not JSON") from exc
    if isinstance(doc, list):
        # GitHub's shape without its signature: someone imitating a partner.
        await deps.record(
            svc,
            rid=rid,
            actor="partner",
            src=src,
            operation="leak:forged",
            outcome=OUTCOME_DENIED,
            detail="partner report without a signature",
        )
        raise Unauthenticated("a partner report must be signed")
    try:
        parsed = LeakReportBody.model_validate(doc)
    except ValidationError as exc:
        raise InvalidInput('the report is {"credentials": [{"credential", "location"}]}') from exc
    reports = [LeakReport(c.credential, c.location) for c in parsed.credentials]
    results, incident = await anyio.to_thread.run_sync(lambda: svc.leaks.report(reports, src, rid))
    return json_response({"results": results, "incident": incident})


@router.post(
    "/scan/known-digests",
    dependencies=[Depends(deps.authenticated)],
    responses={200: {"model": KnownDigests}},
)
async def known_digests(request: Request, body: KnownDigestsBody) -> Response:
    """One-time-keyed digests of the values the caller may read (audited per secret)."""
    ctx = await deps.context(request)
    key, entries = await deps.services(request).secrets.known_digests(ctx, body.prefix)
    return json_response(
        {
            "algorithm": "hmac-sha256",
            "key": base64.b64encode(key).decode(),
            "secrets": entries,
        }
    )
