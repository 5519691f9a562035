"""Leak reports: a keysafe credential seen in the wild is revoked at once.

Unsigned reports need no token: the report carries the leaked credential itself, and
whoever holds it could misuse it anyway, so revoking it on their word is always safe.
Signed reports come from secret-scanning partners (see ``partner``). Either way a live
credential is revoked at once and an incident is opened for it (see ``service``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from keysafe.access.apikeys import KeyService
from keysafe.access.service import TokenService
from keysafe.access.sessions import SessionStore
from keysafe.audit.models import OUTCOME_OK, AuditEvent
from keysafe.audit.service import AuditLog
from keysafe.clock import Clock
from keysafe.crypto import keyformat
from keysafe.errors import InvalidInput, Unauthenticated
from keysafe.incident.models import KIND_KEY, KIND_TOKEN, Exposure, Item
from keysafe.incident.partner import FALSE_POSITIVE, TRUE_POSITIVE, PartnerReports
from keysafe.incident.service import IncidentService

MAX_CREDENTIALS_PER_REPORT = 100

# Result statuses are part of the API: only ever add.
REVOKED = "revoked"
ALREADY_REVOKED = "already_revoked"
UNKNOWN = "unknown"
NOT_A_KEYSAFE_CREDENTIAL = "not_a_keysafe_credential"


@dataclass(frozen=True, slots=True)
class LeakReport:
    credential: str
    location: str  # where it was seen: "file:line", a URL, a commit; free text


class LeakService:
    def __init__(
        self,
        tokens: TokenService,
        keys: KeyService,
        audit: AuditLog,
        clock: Clock,
        *,
        incidents_: IncidentService | None = None,
        partners: PartnerReports | None = None,
        sessions: SessionStore | None = None,
    ) -> None:
        self._tokens = tokens
        self._keys = keys
        self._audit = audit
        self._clock = clock
        self._incidents = incidents_
        self._partners = partners
        self._sessions = sessions

    def report(
        self, reports: list[LeakReport], source: str, request_id: str
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Revoke every live credential reported; one result per report, in order, and
        the id of the incident opened for those newly revoked (None if none was).

        Unsigned reports open an incident only for a credential they revoked: a
        credential already dead opens nothing, so old leaks cannot flood the list."""
        if not reports:
            raise InvalidInput("report at least one credential")
        if len(reports) > MAX_CREDENTIALS_PER_REPORT:
            raise InvalidInput(f"report at most {MAX_CREDENTIALS_PER_REPORT} credentials at once")
        results: list[dict[str, Any]] = []
        found: list[tuple[Item, str]] = []
        for report in reports:
            kind = keyformat.parse(report.credential)
            if kind is None:
                results.append({"status": NOT_A_KEYSAFE_CREDENTIAL})
                continue
            result, item = self._revoke(
                kind, report.credential, report.location, source, request_id
            )
            results.append(result)
            if item is not None and result["status"] == REVOKED:
                found.append((item, report.credential))
        incident = self._open(found, "leak-report", "leak-report", source, request_id)
        return results, incident

    def partner_report(
        self, body: bytes, identifier: str, signature: str, source: str, request_id: str
    ) -> list[dict[str, Any]]:
        """Verify a signed partner report (see ``partner``), revoke what it names and
        open an incident for every keysafe credential in it (revoked now or before).
        Returns GitHub's feedback array. Raises Unauthenticated (forged; also when no
        partner key is configured), Conflict (replayed), InvalidInput (bad shape)."""
        if self._partners is None:
            raise Unauthenticated("signed leak reports are not configured")
        matches = self._partners.accept(body, identifier, signature, source, request_id)
        actor = f"partner:{identifier[:40]}"
        feedback: list[dict[str, Any]] = []
        found: list[tuple[Item, str]] = []
        for match in matches:
            kind = keyformat.parse(match.token)
            item = None
            if kind is not None:
                _, item = self._revoke(kind, match.token, match.location(), source, request_id)
            if item is not None:
                found.append((item, match.token))
            feedback.append(
                {
                    "token_hash": match.token_hash(),
                    "token_type": match.type,
                    "label": TRUE_POSITIVE if item is not None else FALSE_POSITIVE,
                }
            )
        self._open(found, actor, actor, source, request_id)
        return feedback

    def _open(
        self, found: list[tuple[Item, str]], origin: str, actor: str, source: str, rid: str
    ) -> str | None:
        if not found or self._incidents is None:
            return None
        unique = {(i.kind, i.ref): (i, raw) for i, raw in found}
        exposure = Exposure(
            tuple(i for i, _ in unique.values()), {k: raw for k, (_, raw) in unique.items()}
        )
        incident = self._incidents.open(
            exposure,
            title=f"leak report ({origin})",
            origin=origin,
            actor=actor,
            source=source,
            request_id=rid,
        )
        return incident.id

    def _revoke(
        self, kind: str, credential: str, location: str, source: str, request_id: str
    ) -> tuple[dict[str, Any], Item | None]:
        """Find the credential (token, API key or session) and revoke it with its audit
        event. A person's session has no incident item: it is revoked and audited."""
        if kind == keyformat.KIND_SESSION:
            return self._revoke_session(credential, location, source, request_id), None
        is_key = kind == keyformat.KIND_LIVE_KEY
        store: TokenService | KeyService = self._keys if is_key else self._tokens
        id_field, operation, item_kind = (
            ("key_id", "key:revoke-leaked", KIND_KEY)
            if is_key
            else ("token_id", "token:revoke-leaked", KIND_TOKEN)
        )
        with store.write_txn() as conn:
            record = store.find(credential, conn)
            if record is None:
                return {"status": UNKNOWN}, None
            item = Item(item_kind, str(record["id"]), f"reported leaked at {location[:200]}")
            if record["revoked_at"] is not None:
                return {"status": ALREADY_REVOKED, id_field: record["id"]}, item
            if is_key:
                self._keys.revoke(conn, record["id"])
            else:
                self._tokens.revoke(record["id"], conn)
            self._audit.append_in_txn(
                conn,
                [
                    AuditEvent(
                        ts=self._clock.now_us(),
                        request_id=request_id,
                        actor="leak-report",
                        source=source,
                        operation=operation,
                        path=str(record.get("prefix", "")),
                        outcome=OUTCOME_OK,
                        detail=f"{record['id']} seen at {location[:200]}",
                    )
                ],
            )
        return {"status": REVOKED, id_field: record["id"]}, item

    def _revoke_session(
        self, credential: str, location: str, source: str, request_id: str
    ) -> dict[str, Any]:
        if self._sessions is None:
            return {"status": UNKNOWN}
        with self._sessions.write_txn() as conn:
            record = self._sessions.find(credential, conn)
            if record is None:
                return {"status": UNKNOWN}
            if record["revoked_at"] is not None:
                return {"status": ALREADY_REVOKED, "session_id": record["id"]}
            self._sessions.revoke(conn, record["id"])
            self._audit.append_in_txn(
                conn,
                [
                    AuditEvent(
                        ts=self._clock.now_us(),
                        request_id=request_id,
                        actor="leak-report",
                        source=source,
                        operation="session:revoke-leaked",
                        path="",
                        outcome=OUTCOME_OK,
                        detail=f"{record['id']} seen at {location[:200]}",
                    )
                ],
            )
        return {"status": REVOKED, "session_id": record["id"]}
