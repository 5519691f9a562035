"""Leak reports and the digests behind ``keysafe scan --known``."""

from __future__ import annotations

import base64

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from keysafe.incident.service import LeakReport
from keysafe.server import deps
from keysafe.server.routes.sys import json_response

router = APIRouter(prefix="/api/v1", tags=["leaks"])


class ReportedCredential(BaseModel):
    credential: str = Field(max_length=256)
    location: str = Field("", max_length=1024)


class LeakReportBody(BaseModel):
    credentials: list[ReportedCredential]


class KnownDigestsBody(BaseModel):
    prefix: str = Field("", max_length=512)


@router.post("/leaks")
async def report_leaks(request: Request, body: LeakReportBody) -> Response:
    """Revoke reported keysafe credentials. No token needed: the report carries the
    credential itself, so only its holder (or a finder) can have it revoked."""
    svc = deps.services(request)
    reports = [LeakReport(c.credential, c.location) for c in body.credentials]
    results = await anyio.to_thread.run_sync(
        lambda: svc.leaks.report(reports, deps.source(request), deps.request_id(request))
    )
    return json_response({"results": results})


@router.post("/scan/known-digests", dependencies=[Depends(deps.authenticated)])
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
