"""Appending to the audit trail without a lock shared between nodes.

Each writing thread of each process appends to its own hash chain (a *writer chain*,
named ``<node>/<pid>.<thread>.<random>``), whose head row only that thread updates: two
nodes never wait on each other to audit. A chain opens once, recording its name and a
random start in the *root chain* (the single chain of every event written before
migration 0018, whose head is the old ``audit_head`` row): that short lock is taken once
per writer, never per operation. Verification (``keysafe.audit.chainverify``) walks every
chain and finds a whole chain removed through that record.

One thread per chain also keeps the audit file in chain order, since each thread writes
its lines only after its own commit (``after_commit``), before it appends again.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from sqlalchemy import Engine

from keysafe.audit.models import (
    GENESIS_HASH,
    OP_CHAIN_CUT,
    OP_CHAIN_OPEN,
    OUTCOME_ERROR,
    OUTCOME_OK,
    AuditEvent,
    ChainedEvent,
    Checkpoint,
    chain,
    head_mac,
)
from keysafe.audit.verify import Head

log = logging.getLogger("keysafe.audit")
_checkpoint_log = logging.getLogger("keysafe.audit.checkpoint")

# PostgreSQL: the trail's order numbers come from a sequence (migration 0018).
_NEXTVAL_SQL = "SELECT nextval('audit_events_seq') FROM generate_series(1, %s)"
_LOCK_HEAD_PG = (
    "SELECT seq, hash, mac,"
    " ARRAY(SELECT nextval('audit_events_seq') FROM generate_series(1, %s))"
    " FROM audit_chains WHERE chain = %s FOR UPDATE"
)
_INSERT_EVENT_SQL = (
    "INSERT INTO audit_events (seq, ts, request_id, actor, source, operation, path, outcome,"
    " detail, prev_hash, hash, node, chain, chain_seq)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_CHECKPOINT_SQL = (
    "INSERT INTO audit_checkpoints (chain, n, seq, hash, ts, mac) VALUES (?, ?, ?, ?, ?, ?)"
)
_INSERT_CHAIN_SQL = (
    "INSERT INTO audit_chains (chain, node, opened_at, start, seq, hash, mac)"
    " VALUES (?, ?, ?, ?, 0, ?, ?)"
)


def open_detail(name: str, start: bytes) -> str:
    """The root-chain record of a writer chain opening (parsed by ``parse_open``)."""
    return f"chain={name} start={start.hex()}"


def parse_open(detail: str) -> tuple[str, bytes] | None:
    parts = dict(p.partition("=")[::2] for p in detail.split(" "))
    try:
        return parts["chain"], bytes.fromhex(parts["start"])
    except (KeyError, ValueError):
        return None


def open_line(name: str, node: str, start: bytes, key: bytes) -> bytes:
    """The audit-file line that begins a writer chain: its start, signed like a head at 0."""
    doc = {
        "chain": name,
        "open": start.hex(),
        "node": node,
        "mac": head_mac(key, 0, start, name).hex(),
    }
    return orjson.dumps(doc) + b"\n"


def _now_us() -> int:
    return time.time_ns() // 1000


def _cut_event(seq: int, why: str) -> AuditEvent:
    return AuditEvent(
        ts=_now_us(),
        request_id="",
        actor="keysafe",
        source="",
        operation=OP_CHAIN_CUT,
        path="sys/audit",
        outcome=OUTCOME_ERROR,
        detail=f"found before appending after event {seq}: {why}",
    )


@dataclass(slots=True)
class _ChainState:
    """What this process knows of one of its chains (used by the chain's thread only)."""

    committed: int = 0  # the highest position this process saw committed
    checkpoint_due: float = 0.0


@dataclass(slots=True)
class Appended:
    """One append: the chained events, and what to write to the file once committed."""

    chained: list[ChainedEvent]
    chain: str
    lines: bytes = b""
    checkpoint: Checkpoint | None = None
    extra: list[str] = field(default_factory=list)


class ChainAppender:
    """Appends events to the calling thread's writer chain inside an open transaction."""

    def __init__(
        self,
        engine: Engine,
        key: Callable[[], bytes],
        anchored: Callable[[], bool],
        node: str,
        *,
        checkpoint_every: int,
        checkpoint_seconds: float,
        file_writer: Callable[[bytes], None] | None,
    ) -> None:
        self._engine = engine
        self._key = key
        self._anchored = anchored
        self._node = node
        self._postgres = engine.dialect.name == "postgresql"
        self._p = "%s" if self._postgres else "?"
        self._every = max(1, checkpoint_every)
        self._seconds = checkpoint_seconds
        self._file_lines = file_writer is not None
        self._write_file = file_writer
        self._local = threading.local()
        self._pid = os.getpid()
        self._states: dict[str, _ChainState] = {}
        self._root_committed = 0
        self._started = time.monotonic()

    # -- naming --------------------------------------------------------------------------

    def chain_name(self) -> str:
        """This thread's chain (a new one after a fork or once a chain was found cut)."""
        name: str | None = getattr(self._local, "name", None)
        if name is None or self._pid != os.getpid():
            self._pid = os.getpid()
            node = self._node or "local"
            name = f"{node}/{self._pid}.{threading.get_native_id()}.{secrets.token_hex(3)}"
            self._local.name = name
        return name

    def _rename(self) -> str:
        self._local.name = None
        return self.chain_name()

    def committed(self, name: str, position: int) -> None:
        """Called once the transaction holding an append to ``name`` committed."""
        state = self._states.setdefault(name, _ChainState())
        state.committed = max(state.committed, position)

    def committed_positions(self) -> dict[str, int]:
        """The highest position of each chain this process saw committed (for verify)."""
        out = {name: s.committed for name, s in list(self._states.items())}
        if self._root_committed:
            out[""] = self._root_committed
        return out

    # -- appending -----------------------------------------------------------------------

    def append(self, cur: Any, events: list[AuditEvent]) -> Appended:
        key = self._key()
        if self._node:
            events = [e if e.node else replace(e, node=self._node) for e in events]
        name = self.chain_name()
        opened = b""
        head, gseqs = self._lock_head(cur, name, len(events))
        broken = self._head_problem(key, name, head)
        if broken:
            # Appending re-signs the head, which would bless a cut. Start a new chain and
            # say so there first: verify reports the cut chain until it is restored.
            log.error("audit chain %s was cut or its head altered: %s", name, broken)
            events = [_cut_event(head.seq if head else 0, f"chain {name}: {broken}"), *events]
            name = self._rename()
            head = None
        if head is None:
            head, opened = self._open(cur, key, name)
        if gseqs is None or len(gseqs) != len(events):
            gseqs = self._next_seqs(cur, len(events))
        chained = chain(key, head.seq, head.hash, events, name, gseqs)
        p = self._p
        cur.executemany(_INSERT_EVENT_SQL.replace("?", p), [_row(c) for c in chained])
        last = chained[-1]
        cur.execute(
            f"UPDATE audit_chains SET seq = {p}, hash = {p}, mac = {p} WHERE chain = {p}",  # noqa: S608
            (last.chain_seq, last.hash, head_mac(key, last.chain_seq, last.hash, name), name),
        )
        checkpoint = self._checkpoint_if_due(cur, key, name, head.seq, last)
        out = Appended(chained, name, checkpoint=checkpoint)
        if self._file_lines:
            data = opened + b"".join(orjson.dumps(c.as_json()) + b"\n" for c in chained)
            if checkpoint is not None:
                data += orjson.dumps(checkpoint.as_json()) + b"\n"
            out.lines = data
        return out

    def _lock_head(self, cur: Any, name: str, n: int) -> tuple[Head | None, list[int] | None]:
        """The chain's head, locked; on PostgreSQL with ``n`` order numbers taken in the
        same round trip (a number left unused is only a gap)."""
        if self._postgres:
            cur.execute(_LOCK_HEAD_PG, (n, name))
        else:
            cur.execute("SELECT seq, hash, mac FROM audit_chains WHERE chain = ?", (name,))
        row = cur.fetchone()
        if row is None:
            return None, None
        gseqs = sorted(int(g) for g in row[3]) if self._postgres else None
        return Head(int(row[0]), bytes(row[1]), bytes(row[2])), gseqs

    def _head_problem(self, key: bytes, name: str, head: Head | None) -> str:
        state = self._states.get(name)
        committed = state.committed if state else 0
        if head is None:
            return (
                f"its head is missing (this server committed event {committed})"
                if committed
                else ""
            )
        if not head.valid(key, name):
            return f"its head (event {head.seq}) was altered"
        if head.seq < committed:
            return f"its head records event {head.seq}, this server committed event {committed}"
        return ""

    def _next_seqs(self, cur: Any, n: int) -> list[int]:
        """Order numbers for ``n`` events: a sequence on PostgreSQL (no lock); on SQLite
        the writer already holds the database's write lock."""
        if self._postgres:
            cur.execute(_NEXTVAL_SQL, (n,))
            return sorted(int(r[0]) for r in cur.fetchall())
        # A bare MAX: SQLite answers it from the end of the key (COALESCE would scan).
        cur.execute("SELECT MAX(seq) FROM audit_events")
        top = int(cur.fetchone()[0] or 0)
        return list(range(top + 1, top + n + 1))

    def _open(self, cur: Any, key: bytes, name: str) -> tuple[Head, bytes]:
        """Open chain ``name``: its head at a random start, recorded in the root chain.

        On PostgreSQL in a short transaction of its own, so that the root head's lock is
        held for two statements, never for the caller's whole transaction (other nodes
        open chains too); the open line then goes to the file at once. On SQLite in the
        caller's transaction (the database lock is held anyway); its line goes out with
        the events after that commit. Returns the head and the line still to write.
        """
        start = os.urandom(32)
        line = open_line(name, self._node, start, key) if self._file_lines else b""
        if not self._postgres:
            self._record_open(cur, key, name, start)
            return Head(0, start, head_mac(key, 0, start, name)), line
        conn = self._engine.raw_connection()
        try:
            own = conn.cursor()
            try:
                self._record_open(own, key, name, start)
                conn.commit()
            finally:
                own.close()
        except BaseException:
            conn.invalidate()
            raise
        finally:
            conn.close()
        self._write_now(line)
        return Head(0, start, head_mac(key, 0, start, name)), b""

    def _write_now(self, line: bytes) -> None:
        if line and self._write_file is not None:
            self._write_file(line)

    def _record_open(self, cur: Any, key: bytes, name: str, start: bytes) -> None:
        p = self._p
        event = AuditEvent(
            ts=_now_us(),
            request_id="",
            actor="keysafe",
            source="",
            operation=OP_CHAIN_OPEN,
            path="sys/audit",
            outcome=OUTCOME_OK,
            detail=open_detail(name, start),
            node=self._node,
        )
        self._append_root(cur, key, [event])
        cur.execute(
            _INSERT_CHAIN_SQL.replace("?", p),
            (name, self._node, _now_us(), start, start, head_mac(key, 0, start, name)),
        )

    def _append_root(self, cur: Any, key: bytes, events: list[AuditEvent]) -> None:
        """Append to the root chain under its head's lock (only when a chain opens)."""
        lock = " FOR UPDATE" if self._postgres else ""
        cur.execute(f"SELECT seq, hash, mac FROM audit_head WHERE id = 1{lock}")  # noqa: S608
        row = cur.fetchone()
        seq, prev = (int(row[0]), bytes(row[1])) if row else (0, GENESIS_HASH)
        stored = None if row is None else Head(seq, prev, None if row[2] is None else bytes(row[2]))
        broken = self._root_problem(key, stored)
        if broken:
            log.error("the root audit chain was cut or its head altered: %s", broken)
            events = [_cut_event(seq, broken), *events]
            self._root_committed = seq + 1
        gseqs = self._next_seqs(cur, len(events))
        chained = chain(key, seq, prev, events, "", gseqs)
        p = self._p
        rows = [(*_row(c)[:-2], "", c.chain_seq) for c in chained]
        cur.executemany(_INSERT_EVENT_SQL.replace("?", p), rows)
        last = chained[-1]
        mac = head_mac(key, last.chain_seq, last.hash)
        if row is None:
            sql = f"INSERT INTO audit_head (seq, hash, mac, id) VALUES ({p}, {p}, {p}, 1)"  # noqa: S608
        else:
            sql = f"UPDATE audit_head SET seq = {p}, hash = {p}, mac = {p} WHERE id = 1"  # noqa: S608
        cur.execute(sql, (last.chain_seq, last.hash, mac))

    def _root_problem(self, key: bytes, head: Head | None) -> str:
        if head is None:
            return "the chain head is missing (every event was deleted)" if self._anchored() else ""
        if head.seq < self._root_committed:
            return (
                f"the head records event {head.seq}, this server committed event"
                f" {self._root_committed}"
            )
        if head.mac is None:
            return "the chain head carries no MAC" if self._anchored() else ""
        if not head.valid(key):
            return f"the chain head (event {head.seq}) was altered or moved back"
        return ""

    def _checkpoint_if_due(
        self, cur: Any, key: bytes, name: str, before: int, last: ChainedEvent
    ) -> Checkpoint | None:
        """A signed checkpoint of chain ``name`` when the append crossed a multiple of
        ``checkpoint_every`` or the chain has had none for ``checkpoint_seconds``."""
        state = self._states.setdefault(name, _ChainState())
        now = time.monotonic()
        if state.checkpoint_due == 0.0:
            state.checkpoint_due = self._started + self._seconds
        position = last.chain_seq
        if before // self._every == position // self._every and now < state.checkpoint_due:
            return None
        state.checkpoint_due = now + self._seconds
        p = self._p
        cur.execute(f"SELECT MAX(n) FROM audit_checkpoints WHERE chain = {p}", (name,))  # noqa: S608
        found = cur.fetchone()
        n = int(found[0] or 0) + 1 if found else 1
        cp = Checkpoint.make(key, n, position, last.hash, _now_us(), name)
        cur.execute(
            _INSERT_CHECKPOINT_SQL.replace("?", p), (name, cp.n, cp.seq, cp.hash, cp.ts, cp.mac)
        )
        return cp


def log_checkpoint(cp: Checkpoint) -> None:
    """A third copy of a checkpoint, outside the database and the file: the server log."""
    _checkpoint_log.info(
        "audit checkpoint %d: seq=%d hash=%s ts=%d mac=%s chain=%s",
        cp.n,
        cp.seq,
        cp.hash.hex(),
        cp.ts,
        cp.mac.hex(),
        cp.chain,
    )


def _row(c: ChainedEvent) -> tuple[Any, ...]:
    e = c.event
    return (
        c.seq,
        e.ts,
        e.request_id,
        e.actor,
        e.source,
        e.operation,
        e.path,
        e.outcome,
        e.detail,
        c.prev_hash,
        c.hash,
        e.node,
        c.chain,
        c.chain_seq,
    )
