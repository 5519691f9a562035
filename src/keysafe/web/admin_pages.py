"""Policies and the audit trail in the console.

Each page needs what its API twin needs (``policy:list``, ``policy:write``,
``policy:check``, ``audit:read``, ``audit:verify``: ``deps.needs_context``, audited
when refused) and changes go through ``deps.audited_change`` like the API's. The
editor's live validation runs the server's own policy parser and stores nothing.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import anyio.to_thread
import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from keysafe.access.grants import holder_of
from keysafe.access.policy_parse import parse_policy
from keysafe.audit.models import OUTCOME_OK
from keysafe.errors import InvalidInput, NotFound
from keysafe.server import deps
from keysafe.timefmt import iso_us, parse_iso_us
from keysafe.web.caller import Caller, act, common, may_admin, renderer, show
from keysafe.web.render import redirect
from keysafe.web.security import UI_PREFIX

router = APIRouter(prefix=UI_PREFIX, include_in_schema=False)

_CAPABILITIES = ("read", "list", "write", "delete", "destroy", "manage-keys", "read-audit", "admin")
_MAX_POLICY = 256 * 1024
# The audit viewer reads at most this many events per page while filtering.
AUDIT_SCAN = 5000
AUDIT_PAGE = 100


def _policy_url(name: str, note: str = "") -> str:
    return f"{UI_PREFIX}/policy?name={quote(name)}" + (f"&note={quote(note)}" if note else "")


@router.get("/policies")
async def policies(request: Request) -> Response:
    svc = deps.services(request)

    async def build(caller: Caller) -> Response:
        await deps.needs_context(request, "policy:list")
        found = await anyio.to_thread.run_sync(svc.policies.list_policies)
        return renderer(request).page(
            "policies.html",
            **common(svc, caller),
            title="Policies",
            policies=found,
            can_write=may_admin(svc, caller, "policy:write"),
            policy_url=_policy_url,
        )

    return await show(request, build)


async def _policy_view(
    request: Request,
    caller: Caller,
    name: str,
    *,
    status: int = 200,
    text: str | None = None,
    error: dict[str, Any] | None = None,
    note: str = "",
    check: dict[str, Any] | None = None,
) -> Response:
    svc = deps.services(request)
    await deps.needs_context(request, "policy:read")
    record: dict[str, Any] = {"name": name, "text": "", "updated_at": None, "updated_by": ""}
    if name:
        try:
            record = await anyio.to_thread.run_sync(svc.policies.get, name)
        except NotFound:
            record["name"] = name
    return renderer(request).page(
        "policy.html",
        status,
        **common(svc, caller),
        title=f"Policy {name}" if name else "New policy",
        policy=record,
        text=record["text"] if text is None else text,
        error=error,
        note=note,
        check=check,
        capabilities=_CAPABILITIES,
        can_write=may_admin(svc, caller, "policy:write"),
        can_check=may_admin(svc, caller, "policy:check"),
    )


@router.get("/policy")
async def policy_page(request: Request, name: str = "", note: str = "") -> Response:
    async def build(caller: Caller) -> Response:
        shown = "Saved." if note == "saved" else ""
        return await _policy_view(request, caller, name[:128], note=shown)

    return await show(request, build)


@router.post("/policy")
async def write_policy(request: Request) -> Response:
    svc = deps.services(request)

    async def action(caller: Caller, form: dict[str, str]) -> Response:
        name = form.get("name", "").strip()
        text = form.get("text", "").replace("\r\n", "\n")
        if not name:
            raise InvalidInput("a policy needs a name")
        if len(text) > _MAX_POLICY:
            raise InvalidInput("the policy is too long")
        ctx = await deps.needs_context(request, "policy:write")
        holder = holder_of(ctx.principal)
        try:
            await deps.audited_change(
                request,
                "policy:write",
                name,
                lambda conn: svc.policies.write(
                    conn, name, text, ctx.principal.token_id, holder=holder
                ),
                lambda result: f"{result['rules']} rules",
            )
        except InvalidInput as exc:
            error = {"message": exc.detail, "line": exc.extra.get("line")}
            return await _policy_view(request, caller, name, status=400, text=text, error=error)
        return redirect(_policy_url(name, "saved"))

    return await act(request, action)


@router.post("/policy/validate")
async def validate_policy(request: Request) -> Response:
    """For the editor, as one types: ``{"ok"}`` or the parser's line and message."""

    async def action(caller: Caller, form: dict[str, str]) -> Response:
        await deps.needs_context(request, "policy:read")
        text = form.get("text", "").replace("\r\n", "\n")[:_MAX_POLICY]
        doc: dict[str, Any] = {"ok": True}
        try:
            parsed = parse_policy(form.get("name", "") or "draft", text)
            doc["rules"] = len(parsed.rules)
        except InvalidInput as exc:
            doc = {"ok": False, "message": exc.detail, "line": exc.extra.get("line")}
        return Response(orjson.dumps(doc), media_type="application/json")

    return await act(request, action)


@router.post("/policy/check")
async def check_policy(request: Request) -> Response:
    """Which rule of this policy decides ``capability`` on ``path`` (like
    ``POST /api/v1/policy-check`` with one policy)."""
    svc = deps.services(request)

    async def action(caller: Caller, form: dict[str, str]) -> Response:
        ctx = await deps.needs_context(request, "policy:check")
        name = form.get("name", "")
        path = form.get("path", "")[:512]
        capability = form.get("capability", "read")[:32]
        explanation = svc.policies.policy_set((name,)).explain(
            svc.authorizer.request(capability, path, ctx.source)
        )
        check = {
            "path": path,
            "capability": capability,
            "allowed": bool(explanation.decision),
            "reason": explanation.decision.reason,
            "deciding": explanation.deciding,
            "rules": [(o.label, o.note) for o in explanation.outcomes],
        }
        return await _policy_view(request, caller, name, check=check)

    return await act(request, action)


def _matches(event: dict[str, Any], filters: dict[str, str]) -> bool:
    return all(not want or want in str(event.get(field, "")) for field, want in filters.items())


def _instant(text: str, what: str) -> int | None:
    """An ISO 8601 time (``2026-12-08`` or ``2026-12-08T10:00:00Z``) in microseconds."""
    if not text.strip():
        return None
    try:
        return parse_iso_us(text.strip()[:64])
    except ValueError as exc:
        raise InvalidInput(f"{what} must be an ISO 8601 date or time") from exc


def _within(ts: int, window: tuple[int | None, int | None]) -> bool:
    since, until = window
    return (since is None or ts >= since) and (until is None or ts <= until)


@router.get("/audit")
async def audit(
    request: Request,
    actor: str = "",
    path: str = "",
    operation: str = "",
    outcome: str = "",
    since: str = "",
    until: str = "",
    after: int = 0,
) -> Response:
    """Events oldest first from ``after``, filtered (substring match per field, and a
    time window ``since``..``until`` in ISO 8601)."""
    svc = deps.services(request)

    async def build(caller: Caller) -> Response:
        ctx = await deps.needs_context(request, "audit:read")
        filters = {"actor": actor, "path": path, "operation": operation, "outcome": outcome}
        filters = {k: v[:128] for k, v in filters.items()}
        window = (_instant(since, "since"), _instant(until, "until"))
        start = max(0, after)
        rows = await anyio.to_thread.run_sync(lambda: svc.audit.events(start, AUDIT_SCAN))
        shown: list[dict[str, Any]] = []
        cursor = start
        for row in rows:
            cursor = row.seq
            doc = row.as_json()
            doc["time"] = iso_us(doc["ts"])
            if _matches(doc, filters) and _within(doc["ts"], window):
                shown.append(doc)
                if len(shown) >= AUDIT_PAGE:
                    break
        more = len(shown) >= AUDIT_PAGE or len(rows) >= AUDIT_SCAN
        await deps.record_as(
            svc,
            ctx,
            "audit:events",
            path="sys/audit",
            outcome=OUTCOME_OK,
            detail=f"console after={start}",
        )
        return renderer(request).page(
            "audit.html",
            **common(svc, caller),
            title="Audit",
            events=shown,
            filters=filters,
            since=since[:64],
            until=until[:64],
            next_after=cursor if more else None,
            can_verify=may_admin(svc, caller, "audit:verify"),
            verified=None,
        )

    return await show(request, build)


@router.post("/audit/verify")
async def verify(request: Request) -> Response:
    svc = deps.services(request)

    async def action(caller: Caller, form: dict[str, str]) -> Response:
        ctx = await deps.needs_context(request, "audit:verify")
        result = await anyio.to_thread.run_sync(svc.audit.verify)
        outcome = "intact" if result.ok else f"broken at event {result.first_bad}"
        await deps.record_as(
            svc,
            ctx,
            "audit:verify",
            path="sys/audit",
            outcome=OUTCOME_OK,
            detail=f"source=db: {outcome}",
        )
        verified = {"ok": result.ok, "events": result.events, "reason": result.reason}
        verified["first_bad"] = result.first_bad
        return renderer(request).page(
            "audit.html",
            **common(svc, caller),
            title="Audit",
            events=[],
            filters={"actor": "", "path": "", "operation": "", "outcome": ""},
            since="",
            until="",
            next_after=None,
            can_verify=True,
            verified=verified,
        )

    return await act(request, action)
