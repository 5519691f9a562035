"""The blocking SDK client: the API methods of ``_sync_*.py`` over one transport."""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import Callable, Iterator
from typing import TypeVar

from keysafe.client._paths import check_path
from keysafe.client._sync_access import SyncAccess
from keysafe.client._sync_ops import SyncOps
from keysafe.client._sync_secrets import SyncSecrets
from keysafe.client._sync_system import SyncSystem
from keysafe.client._wire import API, Reply, Request, TransportFailure, error_from_reply
from keysafe.errors import ConnectionFailed

T = TypeVar("T")


class Client(SyncSecrets, SyncSystem, SyncAccess, SyncOps):
    """A connection to a keysafe server.

    Missing arguments come from ``KEYSAFE_ADDR``/``KEYSAFE_TOKEN``/``KEYSAFE_CACERT``, then
    from the profile in ``$KEYSAFE_HOME/profile.toml``. ``addr`` may name several nodes
    of one cluster (a list, or comma-separated): requests stay on the one that last
    answered and move to the next only when that is safe (``keysafe.client._failover``).
    Every method raises a
    ``keysafe.errors.KeysafeError``: the server's problem documents become the same
    classes the server raised, and network or TLS failures become ``ConnectionFailed``.

    ``get``/``get_secret`` keep each current value for ``cache_ttl`` seconds (0 turns
    the cache off); ``refresh`` and ``invalidate`` bypass or empty it, and ``using``
    refetches by itself when the credential it handed out was refused. Writes through
    this client drop the path from its cache. A client may be shared between threads.
    ``http="stdlib"`` talks through ``http.client`` instead of httpx (the CLI does, to
    start fast); ``transport`` takes an ``httpx.BaseTransport`` (tests: MockTransport).
    :class:`keysafe.client.AsyncClient` has the same methods, awaited.
    """

    def invalidate(self, path: str | None = None) -> None:
        """Forget the cached value of ``path`` (of every path when None)."""
        self._cache.drop(None if path is None else check_path(path))

    def using(
        self,
        path: str,
        fn: Callable[[str], T],
        *,
        retry_on: type[BaseException] | tuple[type[BaseException], ...],
    ) -> T:
        """``fn(value)`` with the value of ``path``; when ``fn`` raises one of
        ``retry_on`` (the target's *authentication* error, say
        ``psycopg.OperationalError``), refetch the value bypassing the cache and, if it
        changed, call ``fn`` once more with the new one.

        This is how a rotation lands between two requests without an error: the cached
        credential stops working, the retry uses the rotated one. When the refetched
        value is the same, retrying could only fail again, so the first error is raised;
        a second failure is raised as it is. Name only errors that a new credential can
        cure: anything in ``retry_on`` costs a request to keysafe each time it happens.
        """
        value = self.get(path)
        try:
            return fn(value)
        except retry_on:
            fresh = self.refresh(path)
            # Constant time: the comparison must not leak how much of a value matched.
            if hmac.compare_digest(fresh.encode(), value.encode()):
                raise
        return fn(fresh)

    @contextlib.contextmanager
    def backup_stream(self, read_timeout: float = 120.0) -> Iterator[Iterator[bytes]]:
        """The server's backup file as chunks of bytes (needs the root token or
        ``admin`` on ``sys/backup``), from the current address only: a backup is never
        resumed on another node. A stream cut short raises ConnectionFailed; the file's
        own checksum finds anything else."""
        addr = self.addr
        request = Request("GET", f"{API}/sys/backup")
        stream = getattr(self._transport, "stream", None)
        if stream is None:
            raise TypeError("this client's transport cannot stream a backup")
        try:
            with stream(addr, request, request.merged_headers(self._headers), read_timeout) as (
                status,
                headers,
                chunks,
            ):
                if status >= 400:
                    raise error_from_reply(Reply(status, b"".join(chunks), headers))
                yield chunks
        except TransportFailure as exc:
            raise ConnectionFailed(f"backup stream from {addr} broke: {exc.reason}") from exc
