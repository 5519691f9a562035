"""Blocking transports: send one :class:`~keysafe.client._wire.Request` to one address.

- :class:`HttpxTransport` (the SDK's default): httpx's pooled client, or any
  ``httpx.BaseTransport`` a caller passes (tests use ``httpx.MockTransport``).
- :class:`StdlibTransport`: ``http.client`` with a small keep-alive pool. The CLI uses it
  because importing httpx costs more than the rest of a ``keysafe secret list``.

Both raise :class:`~keysafe.client._wire.TransportFailure` (never a library exception)
and neither follows redirects: a redirect must never carry the token elsewhere.
"""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Protocol

from keysafe.client._wire import Reply, Request, TransportFailure, describe

if TYPE_CHECKING:
    from http.client import HTTPConnection

    import httpx

# Servers close idle keep-alive connections (uvicorn after 5 s): never reuse one that old.
IDLE_REUSE = 4.0


# A streamed answer: status, lower-cased headers, and the body as chunks.
Streamed = tuple[int, dict[str, str], Iterator[bytes]]


class Transport(Protocol):
    def send(self, addr: str, request: Request, headers: Mapping[str, str]) -> Reply: ...

    def close(self) -> None: ...


class HttpxTransport:
    """httpx.Client underneath; ``transport`` replaces its network layer (tests)."""

    def __init__(
        self,
        timeout: float,
        tls: ssl.SSLContext | None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        import httpx

        self._http = httpx.Client(
            timeout=timeout,
            verify=tls if tls is not None else False,
            transport=transport,
            follow_redirects=False,
        )

    def send(self, addr: str, request: Request, headers: Mapping[str, str]) -> Reply:
        import httpx

        body, ctype = request.body()
        sent_headers = dict(headers) | ({"Content-Type": ctype} if ctype else {})
        try:
            resp = self._http.request(
                request.method, addr + request.target(), content=body, headers=sent_headers
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise TransportFailure(httpx_reason(addr, exc), sent=False) from exc
        except httpx.TransportError as exc:
            raise TransportFailure(httpx_reason(addr, exc), sent=True) from exc
        return Reply(
            resp.status_code, resp.content, {k.lower(): v for k, v in resp.headers.items()}
        )

    @contextlib.contextmanager
    def stream(
        self, addr: str, request: Request, headers: Mapping[str, str], read_timeout: float
    ) -> Iterator[Streamed]:
        """The answer's body as it arrives (a backup may be larger than memory)."""
        import httpx

        body, _ctype = request.body()
        timeout = httpx.Timeout(self._http.timeout.connect, read=read_timeout)
        url = addr + request.target()

        def chunks(resp: httpx.Response) -> Iterator[bytes]:
            try:
                yield from resp.iter_bytes()
            except httpx.TransportError as exc:
                raise TransportFailure(httpx_reason(addr, exc), sent=True) from exc

        try:
            with self._http.stream(
                request.method, url, content=body, headers=dict(headers), timeout=timeout
            ) as resp:
                lowered = {k.lower(): v for k, v in resp.headers.items()}
                yield resp.status_code, lowered, chunks(resp)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise TransportFailure(httpx_reason(addr, exc), sent=False) from exc
        except httpx.TransportError as exc:
            raise TransportFailure(httpx_reason(addr, exc), sent=True) from exc

    def close(self) -> None:
        self._http.close()


def httpx_reason(addr: str, exc: Exception) -> str:
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return f"timed out talking to {addr}"
    return describe(addr, exc)


class StdlibTransport:
    """``http.client`` connections, kept alive per address and shared between threads."""

    def __init__(self, timeout: float, tls: ssl.SSLContext | None) -> None:
        self._timeout = timeout
        self._tls = tls
        self._lock = threading.Lock()
        self._idle: dict[str, list[tuple[float, HTTPConnection]]] = {}

    def send(self, addr: str, request: Request, headers: Mapping[str, str]) -> Reply:
        from http.client import HTTPException

        conn, reused = self._take(addr)
        body, ctype = request.body()
        sent_headers = dict(headers) | ({"Content-Type": ctype} if ctype else {})
        if not reused:
            self._connect(addr, conn)
        try:
            conn.request(request.method, _base_path(addr) + request.target(), body, sent_headers)
            resp = conn.getresponse()
            content = resp.read()
        except (OSError, HTTPException) as exc:
            conn.close()
            if reused and request.method in {"GET", "HEAD"}:
                # The server may have dropped the idle connection: one fresh attempt.
                return self._fresh(addr, request, headers)
            raise TransportFailure(describe(addr, exc), sent=True) from exc
        reply = Reply(resp.status, content, {k.lower(): v for k, v in resp.getheaders()})
        if resp.will_close:
            conn.close()
        else:
            self._give(addr, conn)
        return reply

    @contextlib.contextmanager
    def stream(
        self, addr: str, request: Request, headers: Mapping[str, str], read_timeout: float
    ) -> Iterator[Streamed]:
        """The answer's body as it arrives, on a connection of its own (never pooled)."""
        from http.client import HTTPException

        conn = self._new(addr)
        self._connect(addr, conn)
        body, _ctype = request.body()
        try:
            if conn.sock is not None:
                conn.sock.settimeout(read_timeout)
            conn.request(request.method, _base_path(addr) + request.target(), body, dict(headers))
            resp = conn.getresponse()
        except (OSError, HTTPException) as exc:
            conn.close()
            raise TransportFailure(describe(addr, exc), sent=True) from exc

        def chunks() -> Iterator[bytes]:
            try:
                while block := resp.read(1 << 16):
                    yield block
            except (OSError, HTTPException) as exc:  # a cut chunked body: IncompleteRead
                raise TransportFailure(describe(addr, exc), sent=True) from exc

        try:
            yield resp.status, {k.lower(): v for k, v in resp.getheaders()}, chunks()
        finally:
            conn.close()

    def _fresh(self, addr: str, request: Request, headers: Mapping[str, str]) -> Reply:
        with self._lock:
            stale = self._idle.pop(addr, [])
        for _, old in stale:
            old.close()
        return self.send(addr, request, headers)

    def _connect(self, addr: str, conn: HTTPConnection) -> None:
        try:
            conn.connect()
        except OSError as exc:  # refused, unreachable, TLS handshake, connect timeout
            conn.close()
            raise TransportFailure(describe(addr, exc), sent=False) from exc

    def _take(self, addr: str) -> tuple[HTTPConnection, bool]:
        now = time.monotonic()
        with self._lock:
            pool = self._idle.get(addr, [])
            while pool:
                since, conn = pool.pop()
                if now - since < IDLE_REUSE:
                    return conn, True
                conn.close()
        return self._new(addr), False

    def _give(self, addr: str, conn: HTTPConnection) -> None:
        with self._lock:
            self._idle.setdefault(addr, []).append((time.monotonic(), conn))

    def _new(self, addr: str) -> HTTPConnection:
        from http.client import HTTPConnection, HTTPSConnection
        from urllib.parse import urlsplit

        url = urlsplit(addr)
        if url.scheme == "https":
            context = self._tls or ssl.create_default_context()
            return HTTPSConnection(url.netloc, timeout=self._timeout, context=context)
        return HTTPConnection(url.netloc, timeout=self._timeout)

    def close(self) -> None:
        with self._lock:
            pools, self._idle = self._idle, {}
        for pool in pools.values():
            for _, conn in pool:
                conn.close()


def _base_path(addr: str) -> str:
    # An address may carry a path prefix (behind a proxy): https://host/keysafe.
    from urllib.parse import urlsplit

    return urlsplit(addr).path.rstrip("/")
