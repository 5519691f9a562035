"""The SDK's value cache: current secret versions by path, each kept for a fixed TTL.

Per client, never global: two clients (two tokens) must never share what they read.
Thread-safe: one lock around a dict; the network fetch happens outside it, so a slow
server never blocks readers of other paths.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from keysafe.client._models import Secret


class SecretCache:
    """Secrets by path for ``ttl`` seconds after they were fetched; ``ttl`` 0 keeps none."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, Secret]] = {}

    def get(self, path: str) -> Secret | None:
        """The cached secret at ``path``, or None when absent or expired."""
        if self.ttl <= 0:
            return None
        now = self._clock()
        with self._lock:
            entry = self._entries.get(path)
            if entry is None:
                return None
            if entry[0] <= now:
                del self._entries[path]
                return None
            return entry[1]

    def put(self, secret: Secret, fetched_at: float | None = None, *, force: bool = False) -> None:
        """Keep ``secret`` until ``fetched_at + ttl``.

        ``fetched_at`` is when the request was *sent*, so that a slow reply does not
        lengthen the value's life. Unless ``force`` (an explicit refresh, which must win
        even when the current version went *down* after a delete), a newer version
        already cached is not replaced by an older one: two threads racing their
        fetches must not bring back a value that a rotation has replaced."""
        if self.ttl <= 0:
            return
        expires = (self._clock() if fetched_at is None else fetched_at) + self.ttl
        with self._lock:
            held = self._entries.get(secret.path)
            if not force and held is not None and held[1].version > secret.version:
                return
            self._entries[secret.path] = (expires, secret)

    def now(self) -> float:
        return self._clock()

    def drop(self, path: str | None = None) -> None:
        """Forget ``path``, or everything when ``path`` is None."""
        with self._lock:
            if path is None:
                self._entries.clear()
            else:
                self._entries.pop(path, None)
