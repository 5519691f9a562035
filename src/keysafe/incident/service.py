"""Leak reports: a keysafe credential seen in the wild is revoked at once.

Reporting needs no token: the report carries the leaked credential itself, and whoever
holds it could misuse it anyway, so revoking it on their word is always safe. Reports
of text that is not a live keysafe credential change nothing and say so. This is the
entry point the monitoring-and-response work turns into a full incident.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from keysafe.access.apikeys import KeyService
from keysafe.access.service import TokenService
from keysafe.audit.models import OUTCOME_OK, AuditEvent
from keysafe.audit.service import AuditLog
from keysafe.clock import Clock
from keysafe.crypto import keyformat
from keysafe.errors import InvalidInput

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
        self, tokens: TokenService, keys: KeyService, audit: AuditLog, clock: Clock
    ) -> None:
        self._tokens = tokens
        self._keys = keys
        self._audit = audit
        self._clock = clock

    def report(
        self, reports: list[LeakReport], source: str, request_id: str
    ) -> list[dict[str, Any]]:
        """Revoke every live credential reported; one result per report, in order."""
        if not reports:
            raise InvalidInput("report at least one credential")
        if len(reports) > MAX_CREDENTIALS_PER_REPORT:
            raise InvalidInput(f"report at most {MAX_CREDENTIALS_PER_REPORT} credentials at once")
        results: list[dict[str, Any]] = []
        for report in reports:
            kind = keyformat.parse(report.credential)
            if kind is None:
                results.append({"status": NOT_A_KEYSAFE_CREDENTIAL})
            else:
                results.append(self._revoke(kind, report, source, request_id))
        return results

    def _revoke(
        self, kind: str, report: LeakReport, source: str, request_id: str
    ) -> dict[str, Any]:
        """Find the credential (token or API key) and revoke it with its audit event."""
        is_key = kind == keyformat.KIND_LIVE_KEY
        store: TokenService | KeyService = self._keys if is_key else self._tokens
        id_field, operation = (
            ("key_id", "key:revoke-leaked")
            if is_key
            else (
                "token_id",
                "token:revoke-leaked",
            )
        )
        with store.write_txn() as conn:
            record = store.find(report.credential, conn)
            if record is None:
                return {"status": UNKNOWN}
            if record["revoked_at"] is not None:
                return {"status": ALREADY_REVOKED, id_field: record["id"]}
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
                        detail=f"{record['id']} seen at {report.location[:200]}",
                    )
                ],
            )
        return {"status": REVOKED, id_field: record["id"]}
