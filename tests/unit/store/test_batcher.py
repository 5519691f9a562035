"""The group-commit writer survives callers that give up and comes back if it dies.

Issue 11 item 5: a rotation whose claim renewal was cancelled mid-write made the writer
thread set a result on a cancelled future (``InvalidStateError``); the thread died and
every later write of the process hung.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, text

from keysafe.errors import StorageUnavailable
from keysafe.store.batcher import WriteBatcher
from keysafe.store.engine import make_engine

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the batcher's ``run`` wraps a future for asyncio


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{tmp_path / 'b.db'}")
    with eng.begin() as conn:
        conn.execute(text("CREATE TABLE t (v INTEGER)"))
    yield eng
    eng.dispose()


@pytest.fixture
def batcher(engine: Engine) -> Iterator[WriteBatcher]:
    writer = WriteBatcher(engine, "test-writer")
    yield writer
    writer.stop()


def _insert(value: int) -> Any:
    def fn(conn: Connection) -> int:
        conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": value})
        return value

    return fn


def _rows(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT v FROM t ORDER BY v"))]


async def test_cancelled_callers_do_not_kill_the_writer(
    batcher: WriteBatcher, engine: Engine
) -> None:
    entered, release = threading.Event(), threading.Event()

    def slow(conn: Connection) -> int:
        entered.set()
        release.wait(10)
        conn.execute(text("INSERT INTO t (v) VALUES (1)"))
        return 1

    running = asyncio.ensure_future(batcher.run(slow))
    await asyncio.to_thread(entered.wait, 10)
    # Queued behind the running batch, then cancelled before its turn: skipped.
    queued = asyncio.ensure_future(batcher.run(_insert(2)))
    await asyncio.sleep(0)
    queued.cancel()
    running.cancel()  # cancelled while its operation runs in the writer thread
    await asyncio.sleep(0)
    release.set()
    for task in (running, queued):
        with pytest.raises(asyncio.CancelledError):
            await task
    # The writer still serves, and the cancelled-while-running write was committed.
    assert await batcher.run(_insert(3)) == 3
    assert batcher.alive
    assert batcher.restarts == 0
    assert _rows(engine) == [1, 3]


async def test_many_cancellations_racing_answers(batcher: WriteBatcher) -> None:
    for _ in range(50):
        tasks = [asyncio.ensure_future(batcher.run(_insert(i))) for i in range(20)]
        await asyncio.sleep(0)
        for task in tasks[::2]:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert await batcher.run(_insert(-1)) == -1
    assert batcher.alive
    assert batcher.restarts == 0


def test_a_dead_writer_is_restarted_and_reported(
    batcher: WriteBatcher, engine: Engine, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    assert batcher.run_sync(_insert(1)) == 1
    real = batcher._run_batch

    def die(batch: Any) -> None:
        monkeypatch.setattr(batcher, "_run_batch", real)
        raise SystemExit  # ends the thread whatever the loop catches

    monkeypatch.setattr(batcher, "_run_batch", die)
    with pytest.raises(StorageUnavailable):
        batcher.run_sync(_insert(2))  # its caller is answered, not left hanging
    thread = batcher._thread
    assert thread is not None
    thread.join(10)
    assert not batcher.alive  # what health reports while it is down
    with caplog.at_level("ERROR", logger="keysafe.store"):
        assert batcher.run_sync(_insert(3)) == 3
    assert batcher.alive
    assert batcher.restarts == 1
    assert "restarting" in caplog.text
    assert _rows(engine) == [1, 3]


def test_revive_restarts_a_dead_writer_without_a_write(
    batcher: WriteBatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not batcher.revive()  # never started: nothing to revive
    monkeypatch.setattr(batcher, "_run_batch", _exit)
    with pytest.raises(StorageUnavailable):
        batcher.run_sync(_insert(1))
    assert batcher._thread is not None
    batcher._thread.join(10)
    monkeypatch.undo()
    assert not batcher.alive
    assert batcher.revive()
    assert batcher.alive
    assert batcher.restarts == 1
    assert not batcher.revive()
    assert batcher.run_sync(_insert(2)) == 2


def _exit(batch: Any) -> None:
    raise SystemExit
