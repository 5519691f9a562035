"""Verifying the whole trail in the database: every chain (the audit file: file_verify).

The database walk reads one snapshot: the root chain first (which records every writer
chain's name and start as it opened), then every writer chain in order. A chain is
intact when it starts from its recorded start, links event to event, ends at its signed
head and covers its signed checkpoints; a chain whose head or record is gone, or which
has events but no record, is named. The chains are stitched by time in the report.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, select

from keysafe.audit.chains import parse_open
from keysafe.audit.models import (
    OP_CHAIN_OPEN,
    Checkpoint,
    chained_from_row,
)
from keysafe.audit.verify import (
    ChainChecker,
    ChainReport,
    Head,
    VerifyResult,
    check_checkpoints,
    last_file_checkpoints,
)
from keysafe.store.engine import read_conn
from keysafe.store.tables import audit_chains, audit_checkpoints, audit_events, audit_head


@dataclass(frozen=True, slots=True)
class Anchors:
    checkpoints: dict[str, list[Checkpoint]]
    root: Head | None
    heads: dict[str, tuple[Head, str, bytes]]  # chain -> head, node, start


def read_anchors(conn: Connection) -> Anchors:
    checkpoints: dict[str, list[Checkpoint]] = {}
    for r in conn.execute(
        select(audit_checkpoints).order_by(audit_checkpoints.c.chain, audit_checkpoints.c.n)
    ):
        cp = Checkpoint(int(r.n), int(r.seq), bytes(r.hash), int(r.ts), bytes(r.mac), r.chain)
        checkpoints.setdefault(r.chain, []).append(cp)
    row = conn.execute(select(audit_head).where(audit_head.c.id == 1)).first()
    root = None
    if row is not None:
        root = Head(int(row.seq), bytes(row.hash), None if row.mac is None else bytes(row.mac))
    heads = {
        r.chain: (Head(int(r.seq), bytes(r.hash), bytes(r.mac)), r.node, bytes(r.start))
        for r in conn.execute(select(audit_chains))
    }
    return Anchors(checkpoints, root, heads)


def snapshot(conn: Connection) -> Connection:
    """One consistent view for the whole walk (SQLite's read transaction is one)."""
    if conn.dialect.name == "postgresql":
        return conn.execution_options(isolation_level="REPEATABLE READ")
    return conn


def stitch(reports: list[ChainReport]) -> VerifyResult:
    """The chains stitched by time (the root first, then by first event), and the
    verdict."""
    reports.sort(key=lambda r: (r.chain != "", r.first_ts is None, r.first_ts or 0, r.chain))
    total = sum(r.events for r in reports)
    bad = [r for r in reports if not r.ok]
    if not bad:
        return VerifyResult(True, total, chains=tuple(reports))
    first = min(bad, key=lambda r: (r.bad_seq is None, r.bad_seq or 0))
    where = first.bad_seq if first.bad_seq is not None else first.first_bad
    return VerifyResult(False, total, where, first.reason, first.chain, tuple(reports))


def verify_database(
    engine: Engine,
    key: bytes,
    anchored: bool,
    file_path: Path | None,
    committed: dict[str, int],
) -> VerifyResult:
    """Every chain against its start, head and checkpoints, the node file's last
    checkpoint and ``committed`` (the highest place of each chain the caller saw
    committed)."""
    reports: list[ChainReport] = []
    with read_conn(engine) as plain:
        conn = snapshot(plain)
        anchors = read_anchors(conn)
        file_cps: dict[str, Checkpoint] = {}
        if file_path is not None:
            file_cps = last_file_checkpoints(file_path, anchors.checkpoints)
        # The root chain, and the writer chains it records.
        root_cps = anchors.checkpoints.get("", [])
        wanted = {cp.seq for cp in root_cps}
        if "" in file_cps:
            wanted.add(file_cps[""].seq)
        root = ChainChecker(key, anchored, wanted)
        opened: dict[str, bytes] = {}
        query = select(audit_events).where(audit_events.c.chain == "")
        if anchors.root is not None:
            query = query.where(audit_events.c.chain_seq <= anchors.root.seq)
        bad: VerifyResult | None = None
        for c in _rows(conn, query.order_by(audit_events.c.chain_seq)):
            bad = root.feed(c.position, c.event, c.prev_hash, c.hash, c.seq)
            if bad is not None:
                break
            if c.event.operation == OP_CHAIN_OPEN:
                found = parse_open(c.event.detail)
                if found is not None:
                    opened[found[0]] = found[1]
        if bad is None:
            bad = root.check_head(anchors.root) or check_checkpoints(root, root_cps, "database")
        bad = bad or _check_extra(root, file_cps, committed)
        reports.append(root.report("", bad))
        # Every writer chain, in one ordered pass.
        names = sorted(set(opened) | set(anchors.heads))
        walked: set[str] = set()
        writer: tuple[str, ChainChecker, VerifyResult | None] | None = None
        query = (
            select(audit_events)
            .where(audit_events.c.chain != "")
            .order_by(audit_events.c.chain, audit_events.c.chain_seq)
        )
        for c in _rows(conn, query):
            if writer is None or writer[0] != c.chain:
                if writer is not None:
                    reports.append(_finish(writer, anchors, file_cps, committed))
                walked.add(c.chain)
                writer = (c.chain, _writer_checker(key, c.chain, opened, anchors, file_cps), None)
            name, checker, failed = writer
            if failed is None:
                failed = checker.feed(c.position, c.event, c.prev_hash, c.hash, c.seq)
                writer = (name, checker, failed)
        if writer is not None:
            reports.append(_finish(writer, anchors, file_cps, committed))
    for name in names:
        if name not in walked:  # opened, but no event (yet, or every one removed)
            checker = _writer_checker(key, name, opened, anchors, file_cps)
            reports.append(_finish((name, checker, None), anchors, file_cps, committed))
    return stitch(reports)


def _rows(conn: Connection, query: Any) -> Iterator[Any]:
    rows = conn.execution_options(yield_per=2000).execute(query)
    try:
        for r in rows:
            yield chained_from_row(r)
    finally:
        rows.close()


def _writer_checker(
    key: bytes,
    name: str,
    opened: dict[str, bytes],
    anchors: Anchors,
    file_cps: dict[str, Checkpoint],
) -> ChainChecker:
    wanted = {cp.seq for cp in anchors.checkpoints.get(name, [])}
    if name in file_cps:
        wanted.add(file_cps[name].seq)
    return ChainChecker(key, True, wanted, chain=name, start=opened.get(name))


def _finish(
    writer: tuple[str, ChainChecker, VerifyResult | None],
    anchors: Anchors,
    file_cps: dict[str, Checkpoint],
    committed: dict[str, int],
) -> ChainReport:
    name, checker, bad = writer
    found = anchors.heads.get(name)
    head, node, start = found if found is not None else (None, "", None)
    if bad is None and checker.start is None:
        bad = checker.fail(1, f"chain {name} was never opened in the root chain (inserted)")
    if bad is None and start is not None and start != checker.start:
        bad = checker.fail(1, f"the head of chain {name} does not start where it opened")
    if bad is None:
        bad = checker.check_head(head) or check_checkpoints(
            checker, anchors.checkpoints.get(name, []), "database"
        )
    if bad is None:
        bad = _check_extra(checker, file_cps, committed)
    return checker.report(node, bad)


def _check_extra(
    checker: ChainChecker, file_cps: dict[str, Checkpoint], committed: dict[str, int]
) -> VerifyResult | None:
    file_cp = file_cps.get(checker.chain)
    if file_cp is not None:
        bad = checker.check_checkpoint(file_cp, "audit file")
        if bad is not None:
            return bad
    mine = committed.get(checker.chain, 0)
    if mine > checker.count:
        return checker.truncated(mine, "this server's last commit")
    return None
