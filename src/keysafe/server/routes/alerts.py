"""``/api/v1/alerts``: anomaly alerts, their acknowledgement, hooks and dead letters.

Reading alerts needs ``read-audit`` on ``sys/alert``; acknowledging, managing hooks and
reading dead letters need ``admin`` there (see ``deps.admin_resource``). Changes are
audited in the same transaction.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import Connection
from starlette.responses import Response

from keysafe.access.apikeys import parse_duration
from keysafe.errors import InvalidInput
from keysafe.server import deps
from keysafe.server.replies.alerts import (
    AlertList,
    AlertRecord,
    DeadLetterList,
    HookList,
    HookRecord,
)
from keysafe.server.routes.sys import json_response
from keysafe.timefmt import parse_iso_us

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])


class HookBody(BaseModel):
    url: str | None = Field(None, max_length=2048)
    secret: str | None = Field(None, max_length=1024, description="webhook signing secret")
    email: str | None = Field(None, max_length=254)
    description: str = Field("", max_length=1024)


def _since(request: Request, since: str | None) -> int | None:
    """``24h``/``7d`` (that long before now) or an RFC 3339 time, as unix microseconds."""
    if since is None or since == "":
        return None
    if since[-1:] in ("s", "m", "h", "d", "w") and since[:-1].isdigit():
        return deps.services(request).clock.now_us() - parse_duration(since) * 1_000_000
    try:
        return parse_iso_us(since)
    except ValueError as exc:
        raise InvalidInput(f"since={since!r} is neither a duration (24h) nor a time") from exc


# -- hooks (declared before /{alert_id} so that "hooks" is not taken for an id) -------


@router.get(
    "/hooks",
    dependencies=[Depends(deps.needs("alert:hook-list"))],
    responses={200: {"model": HookList}},
)
async def list_hooks(request: Request) -> Response:
    await deps.needs_context(request, "alert:hook-list")
    svc = deps.services(request)
    return json_response({"hooks": await anyio.to_thread.run_sync(svc.alerts.hooks.list_hooks)})


@router.post(
    "/hooks",
    status_code=201,
    dependencies=[Depends(deps.needs("alert:hook-add"))],
    responses={201: {"model": HookRecord}},
)
async def add_hook(request: Request, body: HookBody) -> Response:
    """A signed webhook (``url`` + ``secret``) or an e-mail address (``email``)."""
    ctx = await deps.needs_context(request, "alert:hook-add")
    svc = deps.services(request)
    actor = ctx.principal.token_id
    if body.url is not None and body.email is None:
        if not body.secret:
            raise InvalidInput("a webhook needs a signing secret")
        secret = body.secret.encode()
        url = body.url

        def change(conn: Connection) -> dict[str, Any]:
            return svc.alerts.hooks.add_webhook(conn, url, secret, body.description, actor)

    elif body.email is not None and body.url is None:
        if not svc.settings.smtp_host:
            # Accepting it would queue alerts that can never be delivered.
            raise InvalidInput(
                "e-mail alert hooks need an SMTP server: set KEYSAFE_SMTP_HOST on the server"
            )
        email = body.email

        def change(conn: Connection) -> dict[str, Any]:
            return svc.alerts.hooks.add_email(conn, email, body.description, actor)

    else:
        raise InvalidInput("give either url (with secret) or email")
    record = await deps.audited_change(
        request, "alert:hook-add", "", change, lambda r: f"{r['id']} {r['kind']}"
    )
    return json_response(record, 201)


@router.delete(
    "/hooks/{hook_id}", status_code=204, dependencies=[Depends(deps.needs("alert:hook-remove"))]
)
async def remove_hook(request: Request, hook_id: str) -> Response:
    await deps.needs_context(request, "alert:hook-remove")
    svc = deps.services(request)
    await deps.audited_change(
        request,
        "alert:hook-remove",
        "",
        lambda conn: svc.alerts.hooks.remove(conn, hook_id),
        lambda _: hook_id,
    )
    return Response(status_code=204)


@router.get(
    "/dead-letters",
    dependencies=[Depends(deps.needs("alert:dead-letters"))],
    responses={200: {"model": DeadLetterList}},
)
async def dead_letters(request: Request, limit: int = Query(100, ge=1, le=1000)) -> Response:
    """Notifications that failed every attempt (newest first), with the last error."""
    await deps.needs_context(request, "alert:dead-letters")
    svc = deps.services(request)
    rows = await anyio.to_thread.run_sync(lambda: svc.alerts.outbox.messages("dead", limit))
    return json_response({"dead_letters": rows})


# -- alerts ---------------------------------------------------------------------------


@router.get(
    "",
    dependencies=[Depends(deps.needs("alert:list"))],
    responses={200: {"model": AlertList}},
)
async def list_alerts(
    request: Request,
    since: str | None = None,
    status: str | None = None,
    limit: int = Query(500, ge=1, le=5000),
) -> Response:
    """Alerts whose last finding is after ``since`` (``24h`` or an RFC 3339 time)."""
    await deps.needs_context(request, "alert:list")
    svc = deps.services(request)
    since_us = _since(request, since)
    rows = await anyio.to_thread.run_sync(lambda: svc.alerts.list_alerts(since_us, status, limit))
    return json_response({"alerts": rows})


@router.get(
    "/{alert_id}",
    dependencies=[Depends(deps.needs("alert:read"))],
    responses={200: {"model": AlertRecord}},
)
async def show_alert(request: Request, alert_id: str) -> Response:
    await deps.needs_context(request, "alert:read")
    svc = deps.services(request)
    return json_response(await anyio.to_thread.run_sync(svc.alerts.get, alert_id))


@router.post(
    "/{alert_id}/ack",
    dependencies=[Depends(deps.needs("alert:ack"))],
    responses={200: {"model": AlertRecord}},
)
async def acknowledge(request: Request, alert_id: str) -> Response:
    ctx = await deps.needs_context(request, "alert:ack")
    svc = deps.services(request)
    record = await deps.audited_change(
        request,
        "alert:ack",
        "",
        lambda conn: svc.alerts.acknowledge(conn, alert_id, ctx.principal.token_id),
        lambda _: alert_id,
    )
    return json_response(record)
