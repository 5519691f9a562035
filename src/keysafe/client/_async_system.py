"""Generated from _sync_system.py by scripts/gen_async_client.py: do not edit.

The methods of the async client; see that file for what each one does."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from keysafe.client._async_core import AsyncCore
from keysafe.client._models import AuditReport, Health, InitResult, RewrapProgress, SealStatus
from keysafe.client._wire import API, error_from_reply, segment

if TYPE_CHECKING:
    from keysafe.client.types import (
        AuditEventRecord,
        IncidentDetail,
        IncidentRecord,
        IncidentSummary,
        KnownDigests,
        LeakResult,
        Member,
    )


class AsyncSystem(AsyncCore):
    async def health(self) -> Health:
        """Liveness and seal state; a sealed server (503) is an answer, not an error."""
        reply = await self._send("GET", f"{API}/sys/health")
        if reply.status in (200, 503):
            try:
                return Health.from_json(reply.json())
            except ValueError:
                pass
        raise error_from_reply(reply)

    async def seal_status(self) -> SealStatus:
        return SealStatus.from_json(await self._json("GET", f"{API}/sys/seal-status"))

    async def init(
        self, shares: int = 5, threshold: int = 3, *, init_token: str | None = None
    ) -> InitResult:
        """Initialise a new vault; raises AlreadyInitialized after the first time, and
        Unauthenticated without the server's one-time ``init_token`` when it has one."""
        body = {"shares": shares, "threshold": threshold}
        headers = {"X-Keysafe-Init-Token": init_token} if init_token else None
        return InitResult.from_json(
            await self._json("POST", f"{API}/sys/init", json=body, headers=headers)
        )

    async def unseal(
        self, share: str | None = None, *, reset: bool = False, nonce: str | None = None
    ) -> SealStatus:
        """Submit one unseal share (or reset the progress). The reply's ``nonce`` names
        the unseal attempt the first share started: pass it with the further shares and
        a reset (Conflict otherwise)."""
        body: dict[str, Any] = {"reset": True} if reset else {"share": share}
        if nonce:
            body["nonce"] = nonce
        return SealStatus.from_json(await self._json("POST", f"{API}/sys/unseal", json=body))

    async def seal(self) -> SealStatus:
        return SealStatus.from_json(await self._json("POST", f"{API}/sys/seal"))

    async def members(self) -> list[Member]:
        """The cluster's nodes as the server lists them (``GET /api/v1/sys/members``):
        ``id``, ``address``, ``version``, ``pid``, ``sealed``, ``status`` (``up`` or
        ``down``), ``started_at`` and ``heartbeat_at`` (unix microseconds)."""
        doc = await self._json("GET", f"{API}/sys/members")
        found = doc["members"]
        return list(found)

    async def rotate_key(self) -> int:
        """Start a new keyring version; returns its number. ``rewrap`` moves old data."""
        doc = await self._json("POST", f"{API}/sys/rotate-key")
        return int(doc["keyring_version"])

    async def rewrap(self, batch: int = 500) -> RewrapProgress:
        """Re-encrypt one batch under the newest key; call until ``remaining`` is 0."""
        return RewrapProgress.from_json(
            await self._json("POST", f"{API}/sys/rewrap", json={"batch": batch})
        )

    # -- audit -------------------------------------------------------------------------

    async def audit_verify(self, source: str = "db", file: str | None = None) -> AuditReport:
        """Verify the trail kept in the database (``db``) or a node's audit file: the
        server's own, or ``file`` in its audit directory."""
        params = {"source": source} if file is None else {"source": source, "file": file}
        return AuditReport.from_json(await self._json("POST", f"{API}/audit/verify", params=params))

    async def audit_events(self, after: int = 0, limit: int = 100) -> list[AuditEventRecord]:
        params = {"after": str(after), "limit": str(limit)}
        doc = await self._json("GET", f"{API}/audit/events", params=params)
        return list(doc.get("events", []))

    async def unseal_migrate(
        self, to: str, shares: Sequence[str], new_shares: int = 5, new_threshold: int = 3
    ) -> InitResult:
        """Move the vault to ``to`` ("shamir" or "source") with a threshold of its
        current (recovery) shares; returns the new shares (``root_token`` empty)."""
        body = {
            "to": to,
            "shares": [s.strip() for s in shares if s.strip()],
            "new_shares": new_shares,
            "new_threshold": new_threshold,
        }
        return InitResult.from_json(
            await self._json("POST", f"{API}/sys/unseal-migrate", json=body)
        )

    async def generate_root(self, material: Sequence[str]) -> str:
        """A new root token from the unseal key or a threshold of shares (no token needed)."""
        items = [m.strip() for m in material if m.strip()]
        body: dict[str, Any] = (
            {"key": items[0]}
            if len(items) == 1 and items[0].startswith("ksu1_")
            else {"shares": items}
        )
        doc = await self._json("POST", f"{API}/sys/generate-root", json=body)
        return str(doc["root_token"])

    # -- leaks -------------------------------------------------------------------------

    async def report_leaks(self, credentials: Sequence[tuple[str, str]]) -> list[LeakResult]:
        """Report ``(credential, location)`` pairs seen in the wild; live ones are revoked.

        Needs no token: the report carries the credentials themselves.
        """
        body = {"credentials": [{"credential": c, "location": loc} for c, loc in credentials]}
        doc = await self._json("POST", f"{API}/leaks", json=body)
        return list(doc.get("results", []))

    async def known_digests(self, prefix: str = "") -> KnownDigests:
        """One-time-keyed digests of the stored values this token may read."""
        return cast(
            "KnownDigests",
            await self._json("POST", f"{API}/scan/known-digests", json={"prefix": prefix}),
        )

    # -- incidents and the compliance report --------------------------------------------

    async def open_incident(
        self,
        *,
        keys: Sequence[str] = (),
        tokens: Sequence[str] = (),
        secrets: Sequence[str] = (),
        leases: Sequence[str] = (),
        findings: Sequence[Mapping[str, Any]] = (),
        title: str = "",
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Open an incident and run its playbook (contain, eradicate, verify, record,
        report); with ``dry_run`` only the plan. ``findings`` are scan findings
        (``{"secret", "rule", "file", "line"}``): the leaked text is sent, never stored."""
        body = {
            "title": title,
            "keys": list(keys),
            "tokens": list(tokens),
            "secrets": list(secrets),
            "leases": list(leases),
            "findings": [dict(f) for f in findings],
            "dry_run": dry_run,
        }
        return await self._json("POST", f"{API}/incidents", json=body)

    async def list_incidents(self, status: str | None = None) -> list[IncidentSummary]:
        params = {"status": status} if status else None
        doc = await self._json("GET", f"{API}/incidents", params=params)
        return list(doc["incidents"])

    async def show_incident(self, incident_id: str) -> IncidentDetail:
        """The incident, its steps and its timeline."""
        return cast(
            "IncidentDetail", await self._json("GET", f"{API}/incidents/{segment(incident_id)}")
        )

    async def close_incident(self, incident_id: str) -> IncidentRecord:
        return cast(
            "IncidentRecord",
            await self._json("POST", f"{API}/incidents/{segment(incident_id)}/close"),
        )

    async def incident_report(self, incident_id: str, fmt: str = "md") -> str:
        """The incident report as Markdown (``md``) or JSON text (``json``)."""
        url = f"{API}/incidents/{segment(incident_id)}/report"
        return await self._text(url, {"format": fmt})

    async def compliance_report(
        self, fmt: str = "json", *, unused_days: int = 30, expiring_days: int = 30
    ) -> str:
        """The compliance report as JSON text, Markdown (``md``) or an HTML page."""
        params = {
            "format": fmt,
            "unused_days": str(unused_days),
            "expiring_days": str(expiring_days),
        }
        return await self._text(f"{API}/report", params)
