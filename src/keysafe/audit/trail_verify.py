"""Verifying the whole trail: every chain in the database, or one node's audit file.

The database walk reads one snapshot: the root chain first (which records every writer
chain's name and start as it opened), then every writer chain in order. A chain is
intact when it starts from its recorded start, links event to event, ends at its signed
head and covers its signed checkpoints; a chain whose head or record is gone, or which
has events but no record, is named. The chains are stitched by time in the report.

A node's file holds the chains its processes wrote (each after its own ``open`` line),
interleaved, and the root chain's events written before writer chains existed. It
verifies on its own, and against the database's heads and checkpoints of its chains
(a cut file, or a chain of its node missing from it, shows).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, func, select

from keysafe.audit.chains import parse_open
from keysafe.audit.models import (
    OP_CHAIN_OPEN,
    AuditEvent,
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

_RECHECK_SECONDS = 0.5  # a file line lands just after its commit: look again once


@dataclass(frozen=True, slots=True)
class _Anchors:
    checkpoints: dict[str, list[Checkpoint]]
    root: Head | None
    heads: dict[str, tuple[Head, str, bytes]]  # chain -> head, node, start


def _read_anchors(conn: Connection) -> _Anchors:
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
    return _Anchors(checkpoints, root, heads)


def _snapshot(conn: Connection) -> Connection:
    """One consistent view for the whole walk (SQLite's read transaction is one)."""
    if conn.dialect.name == "postgresql":
        return conn.execution_options(isolation_level="REPEATABLE READ")
    return conn


def _result(reports: list[ChainReport]) -> VerifyResult:
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
        conn = _snapshot(plain)
        anchors = _read_anchors(conn)
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
    return _result(reports)


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
    anchors: _Anchors,
    file_cps: dict[str, Checkpoint],
) -> ChainChecker:
    wanted = {cp.seq for cp in anchors.checkpoints.get(name, [])}
    if name in file_cps:
        wanted.add(file_cps[name].seq)
    return ChainChecker(key, True, wanted, chain=name, start=opened.get(name))


def _finish(
    writer: tuple[str, ChainChecker, VerifyResult | None],
    anchors: _Anchors,
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


# -- the audit file ----------------------------------------------------------------------


@dataclass(slots=True)
class _FileChain:
    checker: ChainChecker
    node: str
    start: bytes
    last_cp: Checkpoint | None = None
    bad: VerifyResult | None = None


def _parse(line: bytes) -> dict[str, Any]:
    doc = orjson.loads(line)
    if not isinstance(doc, dict):
        raise ValueError("not an object")
    return doc


def parse_event_line(line: bytes) -> tuple[int, AuditEvent, bytes, bytes, int]:
    """An event line: its place in its chain, the event, its links and order number;
    raises ValueError (or KeyError, TypeError) for anything else."""
    return _event(_parse(line))


def _event(doc: dict[str, Any]) -> tuple[int, AuditEvent, bytes, bytes, int]:
    fields = {k: doc[k] for k in AuditEvent.__slots__ if k != "node"}
    # Lines written before nodes were recorded have no "node".
    event = AuditEvent(**fields, node=doc.get("node", ""))
    seq = int(doc["seq"])
    return (
        int(doc.get("chain_seq", seq)),
        event,
        bytes.fromhex(doc["prev_hash"]),
        bytes.fromhex(doc["hash"]),
        seq,
    )


def walk_trail_file(
    key: bytes, anchored: bool, path: Path
) -> tuple[VerifyResult | None, ChainChecker, Checkpoint | None, dict[str, _FileChain]]:
    """Walk a node's file: the root chain's lines and each writer chain's, interleaved.
    Returns the first failure of the root part or of the file's shape, the root checker
    and its last checkpoint, and each writer chain found (with its own failure)."""
    root = ChainChecker(key, anchored)
    root_cp: Checkpoint | None = None
    chains: dict[str, _FileChain] = {}
    with path.open("rb") as fh:
        for lineno, line in enumerate(fh, start=1):
            try:
                doc = _parse(line)
                name = str(doc.get("chain", ""))
                if "open" in doc:
                    start = bytes.fromhex(doc["open"])
                    if not Head(0, start, bytes.fromhex(doc["mac"])).valid(key, name):
                        return (
                            root.fail(
                                0, f"line {lineno}: the open line of chain {name} was altered"
                            ),
                            root,
                            root_cp,
                            chains,
                        )
                    if name in chains:
                        return (
                            root.fail(0, f"line {lineno}: chain {name} opens twice"),
                            root,
                            root_cp,
                            chains,
                        )
                    checker = ChainChecker(key, True, chain=name, start=start)
                    chains[name] = _FileChain(checker, str(doc.get("node", "")), start)
                    continue
                if "checkpoint" in doc:
                    cp = Checkpoint.from_json(doc)
                    if not cp.chain:
                        bad = _file_checkpoint(root, root_cp, cp, lineno)
                        if bad is not None:
                            return bad, root, root_cp, chains
                        root_cp = cp
                        continue
                    fc = chains.get(cp.chain)
                    if fc is None:
                        return (
                            root.fail(
                                0,
                                f"line {lineno}: checkpoint of chain {cp.chain}"
                                " before its open line",
                            ),
                            root,
                            root_cp,
                            chains,
                        )
                    if fc.bad is None:
                        fc.bad = _file_checkpoint(fc.checker, fc.last_cp, cp, lineno)
                        fc.last_cp = cp
                    continue
                item = _event(doc)
            except (orjson.JSONDecodeError, KeyError, ValueError, TypeError):
                return (
                    root.fail(root.expected, f"line {lineno} is not a valid audit line"),
                    root,
                    root_cp,
                    chains,
                )
            if not name:
                bad = root.feed(*item)
                if bad is not None:
                    return bad, root, root_cp, chains
                continue
            fc = chains.get(name)
            if fc is None:
                # Its open line is gone: the chain's start was cut from the file.
                checker = ChainChecker(key, True, chain=name, start=None)
                fc = chains[name] = _FileChain(checker, str(doc.get("node", "")), b"")
            if fc.bad is None:
                fc.bad = fc.checker.feed(*item)
    return None, root, root_cp, chains


def _file_checkpoint(
    checker: ChainChecker, last: Checkpoint | None, cp: Checkpoint, lineno: int
) -> VerifyResult | None:
    """A checkpoint line follows the last event it covers; numbers run without a gap."""
    expected_n = 1 if last is None else last.n + 1
    if cp.n != expected_n:
        return checker.fail(cp.seq, f"file checkpoint {expected_n} is missing (line {lineno})")
    if not cp.valid(checker.key):
        return checker.fail(cp.seq, f"file checkpoint {cp.n} was altered (line {lineno})")
    if cp.seq != checker.count or cp.hash != checker.prev:
        return checker.fail(
            cp.seq, f"file checkpoint {cp.n} does not match the chain (line {lineno})"
        )
    return None


def verify_file(
    engine: Engine, key: bytes, anchored: bool, path: Path, node: str = ""
) -> VerifyResult:
    """A node's file, on its own and against the database: every chain in it, and
    every chain the database has of its nodes (``node``, and those named in the file).
    Looked at twice when a line seems missing: it is written just after its commit."""
    result = _verify_file_once(engine, key, anchored, path, node)
    if not result.ok and "removed from the end" in result.reason:
        time.sleep(_RECHECK_SECONDS)
        result = _verify_file_once(engine, key, anchored, path, node)
    return result


def _verify_file_once(
    engine: Engine, key: bytes, anchored: bool, path: Path, node: str
) -> VerifyResult:
    with read_conn(engine) as plain:
        conn = _snapshot(plain)
        anchors = _read_anchors(conn)
        # Root events past the file's part: only chain openings may be there.
        root_last = conn.execute(
            select(func.max(audit_events.c.chain_seq)).where(
                audit_events.c.chain == "", audit_events.c.operation != OP_CHAIN_OPEN
            )
        ).scalar()
    try:
        bad, root, root_cp, chains = walk_trail_file(key, anchored, path)
    except FileNotFoundError:
        bad, root, root_cp, chains = None, ChainChecker(key, anchored), None, {}
    reports: list[ChainReport] = []
    if bad is None:
        bad = _file_root_cut(root, root_cp, anchors, int(root_last or 0))
    if bad is not None or root.count:
        reports.append(root.report("", bad))
    nodes = {fc.node for fc in chains.values() if fc.node} | ({node} if node else set())
    for name, fc in chains.items():
        reports.append(fc.checker.report(fc.node, fc.bad or _file_chain_cut(name, fc, anchors)))
    for name, (_, node, _) in sorted(anchors.heads.items()):
        if node in nodes and name not in chains:
            missing = ChainChecker(key, True, chain=name, start=None)
            why = f"chain {name} of node {node} is in the database but not in the file"
            reports.append(missing.report(node, missing.fail(1, why)))
    return _result(reports)


def _file_root_cut(
    root: ChainChecker, last: Checkpoint | None, anchors: _Anchors, root_last: int
) -> VerifyResult | None:
    """The file's root part covers every root event but chain openings (which go to the
    file as each chain's open line), and the database's root checkpoints."""
    if root_last > root.count:
        return root.truncated(root_last, "the database")
    cps = anchors.checkpoints.get("", [])
    if cps and cps[-1].valid(root.key):
        cp = cps[-1]
        if cp.seq > root.count or (last is not None and last.n < cp.n):
            return root.truncated(cp.seq, f"database checkpoint {cp.n}")
    return None


def _file_chain_cut(name: str, fc: _FileChain, anchors: _Anchors) -> VerifyResult | None:
    checker = fc.checker
    found = anchors.heads.get(name)
    if found is None:
        return None  # a chain the database no longer has: verify the database for that
    head, _, start = found
    if start != fc.start:
        return checker.fail(1, f"chain {name} in the file does not start where it opened")
    if head.valid(checker.key, name) and head.seq > checker.count:
        return checker.truncated(head.seq, "the database head")
    cps = anchors.checkpoints.get(name, [])
    if cps and cps[-1].valid(checker.key):
        cp = cps[-1]
        if cp.seq > checker.count or (fc.last_cp is not None and fc.last_cp.n < cp.n):
            return checker.truncated(cp.seq, f"database checkpoint {cp.n}")
    return None
