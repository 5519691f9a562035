"""Verifying one node's audit file, on its own and against the database.

A node's file holds the chains its processes wrote (each after its own ``open`` line),
interleaved, and the root chain's events written before writer chains existed. It
verifies on its own, and against the database's heads and checkpoints of its chains
(a cut file, or a chain of its node missing from it, shows).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, func, select

from keysafe.audit.models import OP_CHAIN_OPEN, AuditEvent, Checkpoint
from keysafe.audit.trail_verify import Anchors, read_anchors, snapshot, stitch
from keysafe.audit.verify import ChainChecker, ChainReport, Head, VerifyResult
from keysafe.store.engine import read_conn
from keysafe.store.tables import audit_events

_RECHECK_SECONDS = 0.5  # a file line lands just after its commit: look again once


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
        conn = snapshot(plain)
        anchors = read_anchors(conn)
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
    return stitch(reports)


def _file_root_cut(
    root: ChainChecker, last: Checkpoint | None, anchors: Anchors, root_last: int
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


def _file_chain_cut(name: str, fc: _FileChain, anchors: Anchors) -> VerifyResult | None:
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
