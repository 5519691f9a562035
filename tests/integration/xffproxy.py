"""A tiny TCP proxy standing for a load balancer, for tests.

It listens in plain HTTP on 127.0.0.1, adds ``X-Forwarded-For: <client>`` to the head of
the one request each connection carries (clients send ``Connection: close``), and
forwards the bytes both ways to a keysafe server over TLS, as a TLS-terminating balancer
would. The server sees the proxy (127.0.0.1) as its TCP peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Iterator

import httpx


class ForwardingProxy:
    def __init__(self, upstream_port: int, tls: ssl.SSLContext, client: str) -> None:
        self.upstream_port = upstream_port
        self.tls = tls
        self.client_address = client
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()
        for task in asyncio.all_tasks(self._loop):  # connections still open
            task.cancel()
        self._loop.run_until_complete(asyncio.sleep(0))
        self._loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            extra = f"X-Forwarded-For: {self.client_address}\r\n".encode()
            head = head[:-2] + extra + b"\r\n"
            up_reader, up_writer = await asyncio.open_connection(
                "127.0.0.1", self.upstream_port, ssl=self.tls, server_hostname="127.0.0.1"
            )
            up_writer.write(head)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    def start(self) -> ForwardingProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Connection": "close"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.Client(base_url=f"http://127.0.0.1:{self.port}", headers=headers, timeout=30)


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, ssl.SSLError):
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    with contextlib.suppress(OSError, RuntimeError):
        if dst.can_write_eof():
            dst.write_eof()


@contextlib.contextmanager
def forwarding(upstream_port: int, tls: ssl.SSLContext, client: str) -> Iterator[ForwardingProxy]:
    proxy = ForwardingProxy(upstream_port, tls, client).start()
    try:
        yield proxy
    finally:
        proxy.stop()
