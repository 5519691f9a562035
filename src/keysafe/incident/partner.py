"""Signed leak reports from secret-scanning partners (GitHub's partner programme shape).

A report is the raw JSON body GitHub sends: an array of
``{"token", "type", "url", "source"}``, signed with ECDSA P-256 over the exact bytes
(``Github-Public-Key-Identifier`` / ``Github-Public-Key-Signature``). The answer is
GitHub's feedback shape: ``[{"token_hash", "token_type", "label"}]`` with ``label``
``true_positive`` or ``false_positive``; keysafe answers with the SHA-256 of the token,
never the token itself.

Replays are refused: the SHA-256 of every accepted body is stored and a second
delivery of the same bytes is refused; an element may carry a ``timestamp`` (RFC 3339
or unix seconds, inside the signed body) and a report older than the configured window,
or dated in the future, is refused too. Forged reports (unknown key, bad signature) are
refused with one vague 401. Every refusal is audited.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError as DbIntegrityError

from keysafe.audit.models import OUTCOME_DENIED, AuditEvent
from keysafe.audit.service import AuditLog
from keysafe.clock import Clock
from keysafe.crypto.signatures import PartnerKeys, SignatureInvalid
from keysafe.errors import Conflict, InvalidInput, Unauthenticated
from keysafe.store.engine import write_txn
from keysafe.store.tables_incidents import leak_report_digests
from keysafe.timefmt import MAX_US, MIN_US, parse_iso_us

MAX_REPORT_BYTES = 256 * 1024
MAX_MATCHES = 100
FUTURE_SKEW_US = 300 * 1_000_000

# Labels of GitHub's feedback format: only ever add.
TRUE_POSITIVE = "true_positive"
FALSE_POSITIVE = "false_positive"


@dataclass(frozen=True, slots=True)
class PartnerMatch:
    token: str
    type: str
    url: str
    source: str

    def location(self) -> str:
        where = self.url or "an unnamed place"
        return f"{where} ({self.source})" if self.source else where

    def token_hash(self) -> str:
        return hashlib.sha256(self.token.encode()).hexdigest()


class PartnerReports:
    """Verifies, de-duplicates and parses signed partner reports."""

    def __init__(
        self,
        engine: Engine,
        keys: PartnerKeys,
        audit: AuditLog,
        clock: Clock,
        *,
        max_age_seconds: int = 3600,
    ) -> None:
        self._engine = engine
        self._keys = keys
        self._audit = audit
        self._clock = clock
        self._max_age_us = max_age_seconds * 1_000_000

    def accept(
        self, body: bytes, identifier: str, signature: str, source: str, request_id: str
    ) -> list[PartnerMatch]:
        """The matches of a genuine, fresh report, its digest now stored.

        Raises Unauthenticated (forged: unknown key or bad signature), Conflict
        (replayed: the same body again, or a timestamp outside the window) and
        InvalidInput (a genuine report of the wrong shape); each refusal is audited.
        """
        ident = identifier[:128]
        try:
            if len(body) > MAX_REPORT_BYTES:
                raise SignatureInvalid("too large")
            self._keys.verify(ident, signature, body)
        except SignatureInvalid:
            self._refuse(source, request_id, "leak:forged", ident, "signature does not verify")
            raise Unauthenticated("the report's signature does not verify") from None
        matches, oldest = _parse(body)
        now = self._clock.now_us()
        if oldest is not None and (
            oldest < now - self._max_age_us or oldest > now + FUTURE_SKEW_US
        ):
            self._refuse(source, request_id, "leak:replay", ident, "timestamp outside the window")
            raise Conflict("the report's timestamp is outside the accepted window")
        # The digest is stored before the report is acted on, so two deliveries racing
        # each other cannot both pass; a report whose processing then fails is not
        # retried by its sender (revocation is per credential and audited, so a partial
        # run is visible). Digests are kept for good: GitHub's reports carry no time,
        # so forgetting one would reopen its replay.
        digest = hashlib.sha256(body).digest()
        try:
            with write_txn(self._engine) as conn:
                seen = (
                    conn.execute(
                        select(leak_report_digests.c.digest).where(
                            leak_report_digests.c.digest == digest
                        )
                    ).first()
                    is not None
                )
                if not seen:
                    conn.execute(
                        insert(leak_report_digests).values(
                            digest=digest, key_identifier=ident, received_at=now
                        )
                    )
        except DbIntegrityError:
            seen = True  # another process stored the same body first
        if seen:
            self._refuse(source, request_id, "leak:replay", ident, "report already processed")
            raise Conflict("this report was already processed")
        return matches

    def _refuse(self, source: str, request_id: str, op: str, ident: str, why: str) -> None:
        self._audit.record_sync(
            AuditEvent(
                self._clock.now_us(),
                request_id,
                "partner",
                source[:64],
                op,
                "",
                OUTCOME_DENIED,
                f"key {ident!r}: {why}"[:500],
            )
        )


def _parse(body: bytes) -> tuple[list[PartnerMatch], int | None]:
    """The matches and the oldest timestamp in them (None when none carries one)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput("the report is not JSON") from exc
    if not isinstance(doc, list) or not doc:
        raise InvalidInput("the report is a non-empty JSON array of matches")
    if len(doc) > MAX_MATCHES:
        raise InvalidInput(f"a report holds at most {MAX_MATCHES} matches")
    matches: list[PartnerMatch] = []
    oldest: int | None = None
    for entry in doc:
        if not isinstance(entry, dict) or not isinstance(entry.get("token"), str):
            raise InvalidInput('each match is an object with a "token" string')
        fields = {k: entry.get(k, "") for k in ("type", "url", "source")}
        if not all(isinstance(v, str) for v in fields.values()):
            raise InvalidInput('"type", "url" and "source" are strings')
        matches.append(
            PartnerMatch(
                entry["token"][:512],
                str(fields["type"])[:128],
                str(fields["url"])[:1024],
                str(fields["source"])[:64],
            )
        )
        if "timestamp" in entry:
            ts = _timestamp(entry["timestamp"])
            oldest = ts if oldest is None else min(oldest, ts)
    return matches, oldest


def _timestamp(value: Any) -> int:
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not MIN_US <= value * 1_000_000 <= MAX_US:  # NaN fails this too
            raise InvalidInput("a timestamp lies in years 1 to 9999")
        return int(value * 1_000_000)
    if isinstance(value, str):
        try:
            return parse_iso_us(value)
        except ValueError as exc:
            raise InvalidInput(f"timestamp {value[:40]!r} is not RFC 3339") from exc
    raise InvalidInput("a timestamp is RFC 3339 text or unix seconds")
