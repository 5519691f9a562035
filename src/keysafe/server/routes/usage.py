"""Usage and metrics: ``/api/v1/keys/{id}/usage``, ``/api/v1/usage``, ``/metrics``.

A key's usage is shown to whoever may manage that key (``manage-keys`` on
``sys/key/<service>``); any subject's usage, and the metrics, to holders of
``read-audit`` (on ``sys/usage`` and ``sys/metrics``). ``/metrics`` answers without a
credential only when ``metrics_public`` is set (the request monitor then serves it
itself, even while sealed). Usage reads are audited; metric scrapes are not (a scraper
every 15 s would drown the trail).
"""

from __future__ import annotations

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from starlette.responses import PlainTextResponse, Response

from keysafe.audit.models import OUTCOME_OK
from keysafe.errors import InvalidInput, NotFound
from keysafe.monitor.metrics import CONTENT_TYPE
from keysafe.monitor.usage import KIND_KEY, KINDS
from keysafe.server import deps
from keysafe.server.replies.monitor import UsageReport
from keysafe.server.routes.sys import json_response

router = APIRouter(tags=["monitoring"])


def _days(request: Request) -> int:
    raw = request.query_params.get("days", "7")
    if not raw.isdigit() or not 1 <= int(raw) <= 3650:
        raise InvalidInput("days: a whole number of days, at least 1")
    return int(raw)


async def _audited_usage(request: Request, kind: str, subject: str, days: int) -> Response:
    svc = deps.services(request)
    doc = await anyio.to_thread.run_sync(svc.usage.usage, kind, subject, days)
    ctx = await deps.context(request)
    await deps.record_as(
        svc,
        ctx,
        "usage:read",
        path=f"{kind}:{subject}",
        outcome=OUTCOME_OK,
    )
    return json_response(doc)


@router.get(
    "/api/v1/keys/{key_id}/usage",
    dependencies=[Depends(deps.authenticated)],
    responses={200: {"model": UsageReport}},
)
async def key_usage(request: Request, key_id: str) -> Response:
    """Requests per day, sources, secret paths touched, first and last use of a key."""
    svc = deps.services(request)
    try:
        owner = await anyio.to_thread.run_sync(svc.keys.service_of, key_id)
    except NotFound:
        # An unknown id is refused like a key of a service the caller may not manage:
        # only those who may see every key learn that it does not exist.
        await deps.needs_context(request, "key:read")
        raise
    await deps.needs_context(request, "key:read", f"sys/key/{owner}")
    return await _audited_usage(request, KIND_KEY, key_id, _days(request))


@router.get(
    "/api/v1/usage",
    dependencies=[Depends(deps.needs("usage:read"))],
    responses={200: {"model": UsageReport}},
)
async def usage(request: Request) -> Response:
    """Usage of any subject: ``?kind=key|identity|secret&id=...&days=N``."""
    kind = request.query_params.get("kind", "")
    subject = request.query_params.get("id", "")
    if kind not in KINDS:
        raise InvalidInput(f"kind: one of {', '.join(KINDS)}")
    if not subject or len(subject) > 512:
        raise InvalidInput("id: the key id, identity id or secret path (at most 512 chars)")
    return await _audited_usage(request, kind, subject, _days(request))


@router.get(
    "/metrics",
    dependencies=[Depends(deps.needs("metrics:read"))],
    response_class=PlainTextResponse,
    responses={200: {"description": "Prometheus text exposition format 0.0.4"}},
)
async def metrics(request: Request) -> Response:
    """Prometheus text exposition of every worker's metrics."""
    svc = deps.services(request)
    svc.metrics.set_sealed(svc.barrier.sealed)
    body = await anyio.to_thread.run_sync(svc.metrics.exposition)
    return Response(body, media_type=CONTENT_TYPE)
