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
# Recorded in the root chain when a writer chain starts: its name and random start.
OP_CHAIN_OPEN = "audit:chain-open"


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
    """An event in its chain. ``seq`` orders the whole trail (every chain); ``chain`` and
    ``chain_seq`` place it in its writer's chain. The root chain ("") holds every event
    written before migration 0018 (there ``chain_seq == seq``) and one ``audit:chain-open``
    per writer chain since."""

    seq: int
    event: AuditEvent
    prev_hash: bytes
    hash: bytes
    chain: str = ""
    chain_seq: int = 0

    @property
    def position(self) -> int:
        """Where it sits in its own chain."""
        return self.chain_seq or self.seq

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
            "chain": self.chain,
            "chain_seq": self.position,
        }

    def as_json(self) -> dict[str, Any]:
        row = self.as_row()
        row["prev_hash"] = self.prev_hash.hex()
        row["hash"] = self.hash.hex()
        if not self.chain:
            # Root-chain lines keep the shape they had before writer chains existed.
            del row["chain"], row["chain_seq"]
        return row


# Writer chains (since migration 0018) hash their name and the event's place in the
# whole trail too: an event moved to another chain, or renumbered, breaks its link.
_CHAIN_LABEL = b"keysafe:audit:chain:v1"


def link(
    key: bytes, seq: int, prev_hash: bytes, event: AuditEvent, chain: str = "", gseq: int = 0
) -> bytes:
    """HMAC over the sequence number, the previous hash and the event.

    Keyed with the audit key from the keyring, so someone holding the database file can
    neither forge an event nor re-hash the chain after editing it. ``seq`` is the place in
    the chain; a writer chain (``chain`` set) also covers its name and ``gseq``, the
    event's place in the whole trail. The root chain keeps the original form.
    """
    # One message, one C call (hmac.digest): the same MAC as feeding it in pieces.
    body = seq.to_bytes(8, "big") + prev_hash + event.canonical()
    if chain:
        body = _chain_prefix(chain) + gseq.to_bytes(8, "big") + body
    return hmac.digest(key, body, "sha256")


def chain(
    key: bytes,
    head_seq: int,
    head_hash: bytes,
    events: list[AuditEvent],
    name: str = "",
    gseqs: list[int] | None = None,
) -> list[ChainedEvent]:
    """Append ``events`` after the head ``(head_seq, head_hash)`` of chain ``name``;
    ``gseqs`` are their places in the whole trail (the chain positions for the root)."""
    out = []
    seq, prev = head_seq, head_hash
    for i, event in enumerate(events):
        seq += 1
        gseq = gseqs[i] if gseqs is not None else seq
        digest = link(key, seq, prev, event, name, gseq)
        out.append(ChainedEvent(gseq, event, prev, digest, name, seq))
        prev = digest
    return out


# Domain labels keep the three MACs apart: an event link, a head anchor and a checkpoint
# can never stand in for one another. Persisted: only ever add.
_HEAD_LABEL = b"keysafe:audit:head:v1"
_CHECKPOINT_LABEL = b"keysafe:audit:checkpoint:v1"


def _chain_prefix(chain: str) -> bytes:
    name = chain.encode()
    return _CHAIN_LABEL + len(name).to_bytes(2, "big") + name


def _chain_name(mac: Any, chain: str) -> None:
    if chain:
        mac.update(_chain_prefix(chain))


def head_mac(key: bytes, seq: int, head_hash: bytes, chain: str = "") -> bytes:
    """HMAC anchoring the chain head ``(seq, hash)``: the event count and the last hash.

    Stored beside the head row, so moving the head back to an earlier event needs a MAC
    only the audit key can make (or a copy of an older database). A writer chain's head
    covers its name (heads cannot be swapped between chains); at seq 0 it signs the
    chain's random start, which the root chain records when the chain opens.
    """
    mac = hmac.new(key, _HEAD_LABEL, hashlib.sha256)
    _chain_name(mac, chain)
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
    seq: int  # the place in its chain
    hash: bytes
    ts: int  # unix microseconds
    mac: bytes
    chain: str = ""

    @classmethod
    def make(
        cls, key: bytes, n: int, seq: int, head_hash: bytes, ts: int, chain: str = ""
    ) -> Checkpoint:
        mac = checkpoint_mac(key, n, seq, head_hash, ts, chain)
        return cls(n, seq, head_hash, ts, mac, chain)

    def valid(self, key: bytes) -> bool:
        """True when the MAC matches (compared in constant time)."""
        expected = checkpoint_mac(key, self.n, self.seq, self.hash, self.ts, self.chain)
        return hmac.compare_digest(expected, self.mac)

    def as_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "checkpoint": self.n,
            "seq": self.seq,
            "hash": self.hash.hex(),
            "ts": self.ts,
            "mac": self.mac.hex(),
        }
        if self.chain:
            doc["chain"] = self.chain
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Checkpoint:
        """Raises KeyError, ValueError or TypeError for a malformed line."""
        return cls(
            int(doc["checkpoint"]),
            int(doc["seq"]),
            bytes.fromhex(doc["hash"]),
            int(doc["ts"]),
            bytes.fromhex(doc["mac"]),
            str(doc.get("chain", "")),
        )


def checkpoint_mac(
    key: bytes, n: int, seq: int, head_hash: bytes, ts: int, chain: str = ""
) -> bytes:
    mac = hmac.new(key, _CHECKPOINT_LABEL, hashlib.sha256)
    _chain_name(mac, chain)
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


def chained_from_row(row: Any) -> ChainedEvent:
    """An ``audit_events`` row as a ChainedEvent."""
    return ChainedEvent(
        int(row.seq),
        event_from_row(row),
        bytes(row.prev_hash),
        bytes(row.hash),
        row.chain or "",
        int(row.chain_seq if row.chain_seq is not None else row.seq),
    )
