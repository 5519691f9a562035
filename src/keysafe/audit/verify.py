"""Verifying the audit chain: altered, missing or reordered events, and truncation.

The chain alone shows edits but not a cut tail: the rows left behind still link up. So
the chain is compared against anchors that only the audit key can make:

- the head row's MAC over (last seq, last hash): moving the head back needs the key;
- numbered, signed checkpoints (database table, audit file, server log): the latest one
  must be covered by the chain, and their numbers must not skip;
- for a vault anchored at initialisation (a flag sealed in the keyring), the chain
  must start from the init anchor, never from nothing: deleting every event shows;
- the highest event this process has committed;
- ``audit:chain-cut`` events, which the appender writes when it finds the head it is
  about to extend (and re-sign) cut or altered.

The database and the audit file are checked against each other. Hiding a cut takes
both copies cut alike plus a head row saved from back then; a whole older copy put
back is found only by the checkpoints in the server log and a running server's memory.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, select

from keysafe.audit.models import (
    GENESIS_HASH,
    OP_CHAIN_CUT,
    AuditEvent,
    Checkpoint,
    event_from_row,
    head_mac,
    link,
)
from keysafe.store.engine import read_conn
from keysafe.store.tables import audit_checkpoints, audit_events, audit_head

_TAIL_CHUNK = 64 * 1024
_TAIL_LIMIT = 64 * 1024 * 1024  # how far back from the end of the file to look


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    events: int
    first_bad: int | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Head:
    """The head row as stored: the last event's seq and hash, and its MAC (or None)."""

    seq: int
    hash: bytes
    mac: bytes | None

    def valid(self, key: bytes) -> bool:
        return self.mac is not None and hmac.compare_digest(
            head_mac(key, self.seq, self.hash), self.mac
        )


class ChainChecker:
    """Feeds events in seq order; remembers the hashes the anchors will ask about."""

    def __init__(self, key: bytes, anchored: bool, wanted: Iterable[int] = ()) -> None:
        self.key = key
        self.anchored = anchored
        self.expected = 1
        self.prev = GENESIS_HASH
        self.count = 0
        self.wanted = set(wanted)
        self.seen: dict[int, bytes] = {}

    def feed(self, seq: int, event: AuditEvent, prev: bytes, digest: bytes) -> VerifyResult | None:
        """None while the chain holds; the failure otherwise."""
        if seq != self.expected:
            return self.fail(
                self.expected, f"event {self.expected} is missing or out of order (found {seq})"
            )
        if seq == 1:
            # The first event links to the init anchor (any hash, covered by its MAC) or,
            # in a vault without one, to zeros. An anchored vault never starts from zeros:
            # such a chain was begun again after every earlier event was deleted.
            if self.anchored and prev == GENESIS_HASH:
                return self.fail(
                    1,
                    "the chain starts from nothing at event 1 although the vault anchored"
                    " it at initialisation (all earlier events were deleted)",
                )
        elif prev != self.prev:
            return self.fail(
                seq, f"event {seq} does not follow event {seq - 1} (reordered or removed)"
            )
        if not hmac.compare_digest(link(self.key, seq, prev, event), digest):
            return self.fail(seq, f"event {seq} was altered")
        if event.operation == OP_CHAIN_CUT:
            return self.fail(seq, f"event {seq} records that the trail was cut: {event.detail}")
        self.count += 1
        self.expected += 1
        self.prev = digest
        if seq in self.wanted:
            self.seen[seq] = digest
        return None

    def fail(self, seq: int, reason: str) -> VerifyResult:
        return VerifyResult(False, self.count, seq, reason)

    def truncated(self, seq: int, by: str) -> VerifyResult:
        return self.fail(
            self.count + 1,
            f"the chain ends at event {self.count} but {by} records event {seq}"
            " (events removed from the end)",
        )

    def check_checkpoint(self, cp: Checkpoint, where: str) -> VerifyResult | None:
        """The chain covers ``cp`` and agrees with it (after the walk)."""
        if not cp.valid(self.key):
            return self.fail(
                cp.seq, f"{where} checkpoint {cp.n} was altered (its MAC does not match)"
            )
        if cp.seq > self.count:
            return self.truncated(cp.seq, f"{where} checkpoint {cp.n}")
        if cp.seq > 0 and self.seen.get(cp.seq) != cp.hash:
            return self.fail(cp.seq, f"event {cp.seq} does not match {where} checkpoint {cp.n}")
        return None

    def check_head(self, head: Head | None) -> VerifyResult | None:
        """The head row exists, carries a valid MAC and names the chain's last event."""
        if head is None:
            if self.count == 0 and not self.anchored:
                return None  # a trail nothing was ever written to
            what = "every event was deleted" if self.count == 0 else "events were removed"
            return self.fail(self.count + 1, f"the chain head is missing ({what})")
        if head.mac is None:
            # Only a vault initialised before heads were signed may show one (its next
            # append signs it); there the head is compared unsigned, as it used to be.
            if self.anchored:
                return self.fail(
                    self.count + 1,
                    "the chain head carries no MAC (cleared, or not written since the upgrade)",
                )
        elif not head.valid(self.key):
            return self.fail(
                min(head.seq, self.count) + 1,
                "the chain head was altered or moved back (its MAC does not match)",
            )
        if head.seq != self.count or (head.seq > 0 and head.hash != self.prev):
            return self.truncated(head.seq, "the head")
        return None


def check_checkpoints(
    checker: ChainChecker, checkpoints: list[Checkpoint], where: str
) -> VerifyResult | None:
    """Numbers run 1, 2, 3 ... without a gap; each checkpoint agrees with the chain."""
    for expected_n, cp in enumerate(checkpoints, start=1):
        if cp.n != expected_n:
            return checker.fail(
                cp.seq, f"{where} checkpoint {expected_n} is missing (checkpoints deleted)"
            )
        bad = checker.check_checkpoint(cp, where)
        if bad is not None:
            return bad
    return None


def parse_line(line: bytes) -> tuple[int, AuditEvent, bytes, bytes] | Checkpoint:
    """One line of the audit file; raises ValueError when it is neither kind."""
    try:
        doc: Any = orjson.loads(line)
        if "checkpoint" in doc:
            return Checkpoint.from_json(doc)
        fields = {k: doc[k] for k in AuditEvent.__slots__ if k != "node"}
        # Lines written before nodes were recorded have no "node".
        event = AuditEvent(**fields, node=doc.get("node", ""))
        return (
            int(doc["seq"]),
            event,
            bytes.fromhex(doc["prev_hash"]),
            bytes.fromhex(doc["hash"]),
        )
    except (orjson.JSONDecodeError, KeyError, ValueError, TypeError) as exc:
        raise ValueError("not an audit line") from exc


def walk_file(checker: ChainChecker, path: Path) -> tuple[VerifyResult | None, Checkpoint | None]:
    """Walk the file's events and checkpoints; the first failure and the last checkpoint."""
    last: Checkpoint | None = None
    with path.open("rb") as fh:
        for lineno, line in enumerate(fh, start=1):
            try:
                item = parse_line(line)
            except ValueError:
                return checker.fail(
                    checker.expected, f"line {lineno} is not a valid audit line"
                ), last
            if isinstance(item, Checkpoint):
                expected_n = 1 if last is None else last.n + 1
                if item.n != expected_n:
                    return checker.fail(
                        item.seq, f"file checkpoint {expected_n} is missing (line {lineno})"
                    ), last
                # A checkpoint line follows the last event it covers.
                if not item.valid(checker.key):
                    return checker.fail(
                        item.seq, f"file checkpoint {item.n} was altered (line {lineno})"
                    ), last
                if item.seq != checker.count or item.hash != checker.prev:
                    return checker.fail(
                        item.seq,
                        f"file checkpoint {item.n} does not match the chain (line {lineno})",
                    ), last
                last = item
                continue
            bad = checker.feed(*item)
            if bad is not None:
                return bad, last
    return None, last


def last_file_checkpoint(path: Path) -> Checkpoint | None:
    """The last checkpoint line of the file, read backwards from its end (bounded)."""
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        return None
    with fh:
        end = fh.seek(0, os.SEEK_END)
        pos, carry = end, b""
        while pos > 0 and end - pos < _TAIL_LIMIT:
            step = min(_TAIL_CHUNK, pos)
            pos -= step
            fh.seek(pos)
            block = fh.read(step) + carry
            lines = block.split(b"\n")
            carry = lines[0] if pos > 0 else b""
            for line in reversed(lines[1:] if pos > 0 else lines):
                if b'"checkpoint"' not in line:
                    continue
                try:
                    item = parse_line(line)
                except ValueError:
                    continue
                if isinstance(item, Checkpoint):
                    return item
    return None


def _anchors(conn: Connection) -> tuple[list[Checkpoint], Head | None]:
    """Checkpoints, then the head: read in this order so that both are covered by what
    is read after them (appends only ever add)."""
    checkpoints = [
        Checkpoint(int(r.n), int(r.seq), bytes(r.hash), int(r.ts), bytes(r.mac))
        for r in conn.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.n))
    ]
    row = conn.execute(select(audit_head).where(audit_head.c.id == 1)).first()
    if row is None:
        return checkpoints, None
    return checkpoints, Head(
        int(row.seq), bytes(row.hash), None if row.mac is None else bytes(row.mac)
    )


def verify_database(
    engine: Engine, key: bytes, anchored: bool, file_path: Path | None, committed: int
) -> VerifyResult:
    """The database chain against its head, its checkpoints, the audit file's last
    checkpoint and ``committed`` (the highest event the caller saw committed)."""
    file_cp = last_file_checkpoint(file_path) if file_path is not None else None
    with read_conn(engine) as conn:
        checkpoints, head = _anchors(conn)
        wanted = {cp.seq for cp in checkpoints} | ({file_cp.seq} if file_cp else set())
        checker = ChainChecker(key, anchored, wanted)
        query = select(audit_events).order_by(audit_events.c.seq)
        if head is not None:
            # Events appended after the head was read are newer than this check.
            query = query.where(audit_events.c.seq <= head.seq)
        rows = conn.execution_options(yield_per=2000).execute(query)
        try:
            for r in rows:
                bad = checker.feed(int(r.seq), event_from_row(r), bytes(r.prev_hash), bytes(r.hash))
                if bad is not None:
                    return bad
        finally:
            rows.close()
    bad = checker.check_head(head) or check_checkpoints(checker, checkpoints, "database")
    if bad is None and file_cp is not None:
        bad = checker.check_checkpoint(file_cp, "audit file")
    if bad is None and committed > checker.count:
        bad = checker.truncated(committed, "this server's last commit")
    return bad or VerifyResult(True, checker.count)


def verify_file(engine: Engine, key: bytes, anchored: bool, path: Path) -> VerifyResult:
    """The audit file's chain and checkpoints, and whether it is shorter than the
    database's signed head or latest checkpoint (a cut file)."""
    # The database first: whatever it records was written to the file before commit.
    with read_conn(engine) as conn:
        checkpoints, head = _anchors(conn)
    checker = ChainChecker(key, anchored)
    try:
        bad, last = walk_file(checker, path)
    except FileNotFoundError:
        bad, last = None, None
    if bad is not None:
        return bad
    if head is not None and head.valid(key) and head.seq > checker.count:
        return checker.truncated(head.seq, "the database head")
    db_cp = checkpoints[-1] if checkpoints else None
    if (
        db_cp is not None
        and db_cp.valid(key)
        and (db_cp.seq > checker.count or (last is not None and last.n < db_cp.n))
    ):
        return checker.truncated(db_cp.seq, f"database checkpoint {db_cp.n}")
    return VerifyResult(True, checker.count)
