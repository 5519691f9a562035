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

import orjson

from keysafe.audit.models import (
    GENESIS_HASH,
    OP_CHAIN_CUT,
    AuditEvent,
    Checkpoint,
    head_mac,
    link,
)

_TAIL_CHUNK = 64 * 1024
_TAIL_LIMIT = 64 * 1024 * 1024  # how far back from the end of the file to look


@dataclass(frozen=True, slots=True)
class ChainReport:
    """One chain's verdict: its events (count, first and last by order number and time)
    and, when broken, the first bad event (its place in the chain, and its order number
    in the whole trail when that event exists)."""

    chain: str
    node: str
    events: int
    ok: bool
    first_seq: int | None = None
    first_ts: int | None = None
    last_seq: int | None = None
    last_ts: int | None = None
    first_bad: int | None = None
    bad_seq: int | None = None
    reason: str = ""

    def as_json(self) -> dict[str, object]:
        doc: dict[str, object] = {
            "chain": self.chain or "root",
            "node": self.node,
            "events": self.events,
            "ok": self.ok,
            "first": _place(self.first_seq, self.first_ts),
            "last": _place(self.last_seq, self.last_ts),
        }
        if not self.ok:
            doc.update(first_bad=self.first_bad, bad_seq=self.bad_seq, reason=self.reason)
        return doc


def _place(seq: int | None, ts: int | None) -> dict[str, int | None] | None:
    return None if seq is None else {"seq": seq, "ts": ts}


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    events: int
    # The first bad event: its order number in the trail (root chain: its place there).
    first_bad: int | None = None
    reason: str = ""
    chain: str = ""  # the chain of the first bad event
    chains: tuple[ChainReport, ...] = ()


@dataclass(frozen=True, slots=True)
class Head:
    """The head row as stored: the last event's seq and hash, and its MAC (or None)."""

    seq: int
    hash: bytes
    mac: bytes | None

    def valid(self, key: bytes, chain: str = "") -> bool:
        return self.mac is not None and hmac.compare_digest(
            head_mac(key, self.seq, self.hash, chain), self.mac
        )


class ChainChecker:
    """Feeds one chain's events in order; remembers the hashes the anchors will ask about.

    The root chain (``chain`` "") is checked as before writer chains existed. A writer
    chain starts from ``start`` (recorded when it opened; None when it never was) and
    its events' order numbers (``gseq``) rise along it.
    """

    def __init__(
        self,
        key: bytes,
        anchored: bool,
        wanted: Iterable[int] = (),
        chain: str = "",
        start: bytes | None = None,
    ) -> None:
        self.key = key
        self.anchored = anchored
        self.chain = chain
        self.start = start
        self.expected = 1
        self.prev = GENESIS_HASH if not chain or start is None else start
        self.count = 0
        self.wanted = set(wanted)
        self.seen: dict[int, bytes] = {}
        self.gseq = 0
        self.bad_seq: int | None = None
        self.first: tuple[int, int] | None = None  # (order number, ts)
        self.last: tuple[int, int] | None = None

    def name(self, seq: int) -> str:
        return f"event {seq}" if not self.chain else f"event {seq} of chain {self.chain}"

    def feed(
        self, seq: int, event: AuditEvent, prev: bytes, digest: bytes, gseq: int = 0
    ) -> VerifyResult | None:
        """None while the chain holds; the failure otherwise."""
        gseq = gseq or seq
        if self.chain:
            return self._feed_writer(seq, event, prev, digest, gseq)
        self.bad_seq = gseq
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
        self._note(gseq, event.ts)
        return None

    def _note(self, gseq: int, ts: int) -> None:
        self.bad_seq = None  # set again by the next event fed, cleared when it holds
        if self.first is None:
            self.first = (gseq, ts)
        self.last = (gseq, ts)

    def _feed_writer(
        self, seq: int, event: AuditEvent, prev: bytes, digest: bytes, gseq: int
    ) -> VerifyResult | None:
        self.bad_seq = gseq
        what = self.name(seq)
        if self.start is None:
            return self.fail(seq, f"{what}: the chain was never opened in the root chain")
        if seq != self.expected:
            return self.fail(
                self.expected,
                f"{self.name(self.expected)} is missing or out of order (found {seq})",
            )
        if prev != self.prev:
            first = "its start" if seq == 1 else f"event {seq - 1}"
            return self.fail(seq, f"{what} does not follow {first} (reordered or removed)")
        if not hmac.compare_digest(link(self.key, seq, prev, event, self.chain, gseq), digest):
            return self.fail(seq, f"{what} (seq {gseq}) was altered, moved or renumbered")
        if gseq <= self.gseq:
            return self.fail(seq, f"{what} (seq {gseq}) is out of order in the trail")
        if event.operation == OP_CHAIN_CUT:
            return self.fail(seq, f"{what} records that the trail was cut: {event.detail}")
        self.count += 1
        self.expected += 1
        self.prev = digest
        self.gseq = gseq
        if seq in self.wanted:
            self.seen[seq] = digest
        self._note(gseq, event.ts)
        return None

    def fail(self, seq: int, reason: str) -> VerifyResult:
        return VerifyResult(False, self.count, seq, reason, self.chain)

    def report(self, node: str, bad: VerifyResult | None) -> ChainReport:
        first, last = self.first, self.last
        return ChainReport(
            self.chain,
            node,
            self.count,
            bad is None,
            None if first is None else first[0],
            None if first is None else first[1],
            None if last is None else last[0],
            None if last is None else last[1],
            None if bad is None else bad.first_bad,
            None if bad is None else self.bad_seq,
            "" if bad is None else bad.reason,
        )

    def truncated(self, seq: int, by: str) -> VerifyResult:
        where = "the chain" if not self.chain else f"chain {self.chain}"
        return self.fail(
            self.count + 1,
            f"{where} ends at event {self.count} but {by} records event {seq}"
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
        if self.chain:
            return self._check_writer_head(head)
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

    def _check_writer_head(self, head: Head | None) -> VerifyResult | None:
        if head is None:
            return self.fail(
                self.count + 1, f"the head of chain {self.chain} is missing (chain removed)"
            )
        if not head.valid(self.key, self.chain):
            return self.fail(
                min(head.seq, self.count) + 1,
                f"the head of chain {self.chain} was altered or moved back (its MAC does not"
                " match)",
            )
        if head.seq < self.count:
            return self.fail(
                head.seq + 1,
                f"{self.name(head.seq + 1)} lies beyond the chain's head (inserted)",
            )
        if head.seq != self.count or head.hash != self.prev:
            return self.truncated(head.seq, "its head")
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


def last_file_checkpoints(path: Path, chains: Iterable[str] = ()) -> dict[str, Checkpoint]:
    """The last checkpoint line of each chain in the file, read backwards from its end
    (bounded), stopping once every one of ``chains`` was found."""
    wanted = set(chains)
    found: dict[str, Checkpoint] = {}
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        return found
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
                    cp = Checkpoint.from_json(orjson.loads(line))
                except (orjson.JSONDecodeError, KeyError, ValueError, TypeError):
                    continue
                found.setdefault(cp.chain, cp)
            if wanted and wanted <= set(found):
                break
    return found


def last_file_checkpoint(path: Path) -> Checkpoint | None:
    """The last checkpoint line of the file (any chain)."""
    found = last_file_checkpoints(path)
    return max(found.values(), key=lambda cp: cp.ts, default=None)
