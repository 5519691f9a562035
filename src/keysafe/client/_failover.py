"""Several server addresses: which one to try, and when moving to the next is safe.

``KEYSAFE_ADDR`` (or the profile's ``addr``) may list several comma-separated addresses
of the nodes of one cluster; ``Client(addr=[...])`` takes a list. A request goes to the
address that last worked (sticky) and moves to the next one only when the node surely
did not act on it:

- the connection could not be made (refused, unreachable, connect timeout, TLS
  handshake): nothing was sent, so any request may go elsewhere;
- a safe method (GET, HEAD) failed later (read timeout, connection dropped): reading
  twice is harmless. A write that may have reached the server is never resent;
- the node answered 503 with a code that means it refused before acting (sealed, not
  initialised, audit sink down: the write was rolled back). ``storage_unavailable`` is
  retried only for safe methods: a connection lost during COMMIT leaves the outcome of a
  write unknown, and resending it could store it twice.

429 is never a reason to move on (the limit is shared across the cluster). Between two
attempts the client waits a short backoff, doubling, bounded by ``MAX_BACKOFF``.

Stdlib only: the CLI's fast path (``keysafe.cli.fastget``) uses it without httpx.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from keysafe.client._config import normalise_addr
from keysafe.errors import ConnectionFailed

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# 503 codes the server gives before it acts, or after rolling the write back.
_REFUSED_BEFORE_ACTING = frozenset({"sealed", "not_initialized", "audit_unavailable"})
FIRST_BACKOFF = 0.025
MAX_BACKOFF = 0.25


def split_addrs(addr: str | Sequence[str]) -> list[str]:
    """Each address of a comma-separated string (or of a list), normalised, in order,
    without repeats. Raises ConnectionFailed when none is left or one has a bad scheme."""
    parts = addr.split(",") if isinstance(addr, str) else [p for a in addr for p in a.split(",")]
    out: list[str] = []
    for part in parts:
        part = part.strip()
        if not part:
            continue
        norm = normalise_addr(part)
        if norm.lower() not in {o.lower() for o in out}:
            out.append(norm)
    if not out:
        raise ConnectionFailed("no keysafe server configured: run `keysafe up` or set KEYSAFE_ADDR")
    return out


def may_move_after_sending(method: str) -> bool:
    """Whether a request that may have reached the server can be sent to another node."""
    return method.upper() in SAFE_METHODS


def may_move_on_503(method: str, code: object) -> bool:
    """Whether a 503 with problem ``code`` lets the request go to another node."""
    if code in _REFUSED_BEFORE_ACTING:
        return True
    return may_move_after_sending(method)


def backoff(attempt: int) -> float:
    """Seconds to wait before attempt number ``attempt`` (0 is the first: no wait)."""
    if attempt <= 0:
        return 0.0
    return min(FIRST_BACKOFF * (1 << min(attempt - 1, 16)), MAX_BACKOFF)


class Addresses:
    """The addresses of one client; the one that last worked is tried first (sticky)."""

    def __init__(self, addrs: Sequence[str]) -> None:
        if not addrs:
            raise ConnectionFailed(
                "no keysafe server configured: run `keysafe up` or set KEYSAFE_ADDR"
            )
        self.all: tuple[str, ...] = tuple(addrs)
        self._current = 0
        self._lock = threading.Lock()

    @property
    def current(self) -> str:
        """The address the next request goes to first."""
        return self.all[self._current]

    def order(self) -> list[tuple[int, str]]:
        """Every (index, address), starting with the current one, then the next ones."""
        start = self._current
        n = len(self.all)
        return [((start + k) % n, self.all[(start + k) % n]) for k in range(n)]

    def worked(self, index: int) -> None:
        """Stay on ``index`` from now on: it answered."""
        with self._lock:
            self._current = index


def all_failed(errors: Sequence[tuple[str, str]]) -> ConnectionFailed:
    """The error when no address could be reached: each address and why, in order."""
    if len(errors) == 1:
        return ConnectionFailed(errors[0][1])
    reasons = "; ".join(why for _, why in errors)
    return ConnectionFailed(f"no keysafe server could be reached ({len(errors)} tried): {reasons}")
