"""Blocking database calls for async callers, with a bounded wait.

On SQLite a call runs inline: the database is a local file, every wait in it is bounded
by the busy timeout, and a thread hop costs more than the query. On PostgreSQL it runs
on a worker thread and the caller waits at most the statement timeout (plus a margin):
a server that hangs without closing its sockets (SIGSTOP, a frozen VM) never answers,
so its own ``statement_timeout`` cannot fire, and only a bound on this side keeps the
event loop and the request moving. The stuck thread finishes by itself once the server
answers again.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy import Engine

from keysafe.errors import StorageUnavailable

T = TypeVar("T")

# Set by make_engine on PostgreSQL engines (execution option): the longest a caller waits.
WAIT_OPTION = "ks_wait_seconds"
_WORKERS = 32


def wait_bound(engine: Engine) -> float | None:
    """The bounded wait for ``engine`` (None: run inline, SQLite)."""
    if engine.dialect.name == "sqlite":
        return None
    value = engine.get_execution_options().get(WAIT_OPTION)
    return float(value) if value is not None else None


class BlockingCalls:
    """Runs ``fn()`` for an async caller: inline on SQLite, on a thread with a bounded
    wait on PostgreSQL (raises StorageUnavailable when the wait runs out)."""

    def __init__(self, engine: Engine) -> None:
        self._wait = wait_bound(engine)
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    @property
    def inline(self) -> bool:
        return self._wait is None

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            with self._lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(_WORKERS, thread_name_prefix="ks-db")
        return self._executor

    async def run(self, fn: Callable[[], T]) -> T:
        """``fn()``'s result; its exceptions propagate. Raises StorageUnavailable when
        the database does not answer within the bound."""
        if self._wait is None:
            return fn()
        fut = asyncio.get_running_loop().run_in_executor(self._pool(), fn)
        try:
            return await asyncio.wait_for(fut, self._wait)
        except TimeoutError:
            raise StorageUnavailable(
                f"the database did not answer within {self._wait:g} s"
            ) from None

    def close(self) -> None:
        """Stop taking calls; threads still waiting on a hung database are left to end."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
