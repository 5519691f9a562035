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

# Written by the appender itself when it finds the chain cut before it appends (the
# append re-signs the head, so without it the cut would be blessed).
OP_CHAIN_CUT = "audit:chain-cut"


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
    # The node that served it (``keysafe.system.nodes``); the audit log fills it in.
    node: str = ""

    def canonical(self) -> bytes:
        """The bytes the chain hashes: stable key order, exact integers.

        ``node`` is hashed only when set. Events written before nodes were recorded have
        none and keep the hash they were written with; a node added to, removed from
        or changed on any event breaks its link. Persisted: only ever add fields this way.
        """
        doc: dict[str, Any] = {
            "ts": self.ts,
            "request_id": self.request_id,
            "actor": self.actor,
            "source": self.source,
            "operation": self.operation,
            "path": self.path,
            "outcome": self.outcome,
            "detail": self.detail,
        }
        if self.node:
            doc["node"] = self.node
        return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


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
            "node": e.node,
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


# Domain labels keep the three MACs apart: an event link, a head anchor and a checkpoint
# can never stand in for one another. Persisted: only ever add.
_HEAD_LABEL = b"keysafe:audit:head:v1"
_CHECKPOINT_LABEL = b"keysafe:audit:checkpoint:v1"


def head_mac(key: bytes, seq: int, head_hash: bytes) -> bytes:
    """HMAC anchoring the chain head ``(seq, hash)``: the event count and the last hash.

    Stored beside the head row, so moving the head back to an earlier event needs a MAC
    only the audit key can make (or a copy of an older database).
    """
    mac = hmac.new(key, _HEAD_LABEL, hashlib.sha256)
    mac.update(seq.to_bytes(8, "big"))
    mac.update(head_hash)
    return mac.digest()


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed statement "event ``seq`` of the chain has hash ``hash``", numbered ``n``.

    Checkpoints are numbered without gaps, kept in the database, copied to the file sink
    and to the server log: a copy kept elsewhere shows a cut even if every database row
    was rewritten consistently.
    """

    n: int
    seq: int
    hash: bytes
    ts: int  # unix microseconds
    mac: bytes

    @classmethod
    def make(cls, key: bytes, n: int, seq: int, head_hash: bytes, ts: int) -> Checkpoint:
        return cls(n, seq, head_hash, ts, checkpoint_mac(key, n, seq, head_hash, ts))

    def valid(self, key: bytes) -> bool:
        """True when the MAC matches (compared in constant time)."""
        expected = checkpoint_mac(key, self.n, self.seq, self.hash, self.ts)
        return hmac.compare_digest(expected, self.mac)

    def as_json(self) -> dict[str, Any]:
        return {
            "checkpoint": self.n,
            "seq": self.seq,
            "hash": self.hash.hex(),
            "ts": self.ts,
            "mac": self.mac.hex(),
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Checkpoint:
        """Raises KeyError, ValueError or TypeError for a malformed line."""
        return cls(
            int(doc["checkpoint"]),
            int(doc["seq"]),
            bytes.fromhex(doc["hash"]),
            int(doc["ts"]),
            bytes.fromhex(doc["mac"]),
        )


def checkpoint_mac(key: bytes, n: int, seq: int, head_hash: bytes, ts: int) -> bytes:
    mac = hmac.new(key, _CHECKPOINT_LABEL, hashlib.sha256)
    mac.update(n.to_bytes(8, "big"))
    mac.update(seq.to_bytes(8, "big"))
    mac.update(head_hash)
    mac.update(ts.to_bytes(8, "big", signed=True))
    return mac.digest()


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
        node=row.node or "",
    )
