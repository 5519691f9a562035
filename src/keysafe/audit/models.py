"""Audit event values and the hash chain that makes the trail tamper-evident.

Event names (``operation``) are persisted: only ever add. They read
``<subject>:<action>``, e.g. ``secret:read``, ``token:create``, ``sys:seal``.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

import orjson

GENESIS_HASH = b"\x00" * 32

OUTCOME_OK = "ok"
OUTCOME_DENIED = "denied"
OUTCOME_ERROR = "error"


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One audited operation. Never holds a secret value or a token."""

    ts: int  # unix microseconds
    request_id: str
    actor: str  # a token id such as tok_..., never the token
    source: str  # client address
    operation: str
    path: str
    outcome: str
    detail: str = ""

    def canonical(self) -> bytes:
        """The bytes the chain hashes: stable key order, exact integers."""
        return orjson.dumps(
            {
                "ts": self.ts,
                "request_id": self.request_id,
                "actor": self.actor,
                "source": self.source,
                "operation": self.operation,
                "path": self.path,
                "outcome": self.outcome,
                "detail": self.detail,
            },
            option=orjson.OPT_SORT_KEYS,
        )


@dataclass(frozen=True, slots=True)
class ChainedEvent:
    seq: int
    event: AuditEvent
    prev_hash: bytes
    hash: bytes

    def as_row(self) -> dict[str, Any]:
        e = self.event
        return {
            "seq": self.seq,
            "ts": e.ts,
            "request_id": e.request_id,
            "actor": e.actor,
            "source": e.source,
            "operation": e.operation,
            "path": e.path,
            "outcome": e.outcome,
            "detail": e.detail,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }

    def as_json(self) -> dict[str, Any]:
        row = self.as_row()
        row["prev_hash"] = self.prev_hash.hex()
        row["hash"] = self.hash.hex()
        return row


def link(key: bytes, seq: int, prev_hash: bytes, event: AuditEvent) -> bytes:
    """HMAC over the sequence number, the previous hash and the event.

    Keyed with the audit key from the keyring, so someone holding the database file can
    neither forge an event nor re-hash the chain after editing it.
    """
    mac = hmac.new(key, digestmod=hashlib.sha256)
    mac.update(seq.to_bytes(8, "big"))
    mac.update(prev_hash)
    mac.update(event.canonical())
    return mac.digest()


def chain(
    key: bytes, head_seq: int, head_hash: bytes, events: list[AuditEvent]
) -> list[ChainedEvent]:
    """Append ``events`` after the head ``(head_seq, head_hash)``."""
    out = []
    seq, prev = head_seq, head_hash
    for event in events:
        seq += 1
        digest = link(key, seq, prev, event)
        out.append(ChainedEvent(seq, event, prev, digest))
        prev = digest
    return out


def event_from_row(row: Any) -> AuditEvent:
    return AuditEvent(
        ts=int(row.ts),
        request_id=row.request_id,
        actor=row.actor,
        source=row.source,
        operation=row.operation,
        path=row.path,
        outcome=row.outcome,
        detail=row.detail,
    )
