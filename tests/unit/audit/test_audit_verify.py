"""The audit file's checkpoint lines: found from the end however long the file is, and
checked against the chain they follow."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from keysafe.audit.file_verify import walk_trail_file
from keysafe.audit.models import AuditEvent, Checkpoint, chain
from keysafe.audit.verify import last_file_checkpoint

KEY = os.urandom(32)


def _file(path: Path, events: int, every: int, pad: int = 0) -> list[Checkpoint]:
    """A chain of ``events`` with a checkpoint line after each ``every`` events."""
    made: list[Checkpoint] = []
    chained = chain(
        KEY,
        0,
        os.urandom(32),
        [
            AuditEvent(i, "r", "tok_x", "127.0.0.1", "secret:read", "a/b", "ok", "x" * pad)
            for i in range(events)
        ],
    )
    with path.open("wb") as fh:
        for c in chained:
            fh.write(orjson.dumps(c.as_json()) + b"\n")
            if c.seq % every == 0:
                cp = Checkpoint.make(KEY, len(made) + 1, c.seq, c.hash, c.seq)
                made.append(cp)
                fh.write(orjson.dumps(cp.as_json()) + b"\n")
    return made


@pytest.mark.parametrize(("events", "every", "pad"), [(10, 3, 0), (400, 150, 500), (5, 10, 0)])
def test_last_checkpoint_is_found_from_the_end(
    tmp_path: Path, events: int, every: int, pad: int
) -> None:
    path = tmp_path / "audit.jsonl"
    made = _file(path, events, every, pad)
    assert last_file_checkpoint(path) == (made[-1] if made else None)
    bad, checker, last, _ = walk_trail_file(KEY, True, path)
    assert bad is None
    assert checker.count == events
    assert last == (made[-1] if made else None)


def test_a_forged_or_misplaced_checkpoint_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    made = _file(path, 9, 3)
    lines = path.read_bytes().splitlines(keepends=True)
    forged = orjson.loads(lines[3])
    forged["seq"] = 2
    lines[3] = orjson.dumps(forged) + b"\n"
    path.write_bytes(b"".join(lines))
    bad, *_ = walk_trail_file(KEY, True, path)
    assert bad is not None
    assert "file checkpoint 1 was altered (line 4)" in bad.reason
    # A genuine checkpoint moved elsewhere does not match the chain there.
    lines[3] = orjson.dumps(made[0].as_json()) + b"\n"
    lines.insert(1, lines.pop(3))
    path.write_bytes(b"".join(lines))
    bad, *_ = walk_trail_file(KEY, True, path)
    assert bad is not None
    assert "file checkpoint 1 does not match the chain (line 2)" in bad.reason
