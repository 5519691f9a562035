"""uvicorn's fast HTTP protocol, taught Vault's ``LIST`` verb and bounded for anonymous
clients.

Vault clients (hvac, the vault CLI) list with the non-standard method ``LIST``; Vault
treats it exactly like ``GET ...?list=true``. The httptools parser rejects unknown
methods before any routing, so the request line is rewritten to that GET form before
parsing. (The pure-Python h11 parser accepts LIST but costs about 40% of read throughput.)

Bounds uvicorn's httptools protocol lacks (its keep-alive timeout only runs between
requests, and llhttp has no header size limit):

- a request head (request line and headers) must arrive whole within
  ``head_timeout`` seconds of its first byte, or of the connection opening: a client
  that connects and sends nothing, or trickles a header byte by byte, is answered 408
  and closed instead of holding a connection and its memory forever;
- a head larger than ``max_head_bytes`` is answered 431 and closed before the
  application sees it;
- a request body must keep arriving: ``body_idle_timeout`` seconds without a byte of an
  unfinished body close the connection (the application sees a disconnect), unless
  reading is paused by flow control or the client awaits ``100 Continue``;
- the TLS handshake is given ``tls_handshake_timeout`` seconds (asyncio and uvloop wait
  60 s by default), through the event loop ``HardenedConfig`` creates.
"""

from __future__ import annotations

import asyncio
from asyncio import TimerHandle
from collections.abc import Callable
from typing import Any

import httptools
import uvloop
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

DEFAULT_HEAD_TIMEOUT = 10.0
DEFAULT_MAX_HEAD_BYTES = 32 * 1024
DEFAULT_TLS_HANDSHAKE_TIMEOUT = 10.0
DEFAULT_BODY_IDLE_TIMEOUT = 30.0


class HardenedConfig(Config):
    """uvicorn's Config plus the bounds of ``VaultListProtocol`` and the TLS handshake
    timeout (a module-level class: worker processes receive it pickled)."""

    def __init__(
        self,
        app: Any,
        *,
        head_timeout: float = DEFAULT_HEAD_TIMEOUT,
        max_head_bytes: int = DEFAULT_MAX_HEAD_BYTES,
        tls_handshake_timeout: float = DEFAULT_TLS_HANDSHAKE_TIMEOUT,
        body_idle_timeout: float = DEFAULT_BODY_IDLE_TIMEOUT,
        **kwargs: Any,
    ) -> None:
        super().__init__(app, **kwargs)
        self.body_idle_timeout = body_idle_timeout
        self.head_timeout = head_timeout
        self.max_head_bytes = max_head_bytes
        self.tls_handshake_timeout = tls_handshake_timeout

    def get_loop_factory(self) -> Callable[[], asyncio.AbstractEventLoop] | None:
        """uvloop, with the TLS handshake bounded on every server it creates."""
        handshake = self.tls_handshake_timeout

        def factory() -> asyncio.AbstractEventLoop:
            return _BoundedHandshakeLoop(handshake)

        return factory


class _BoundedHandshakeLoop(uvloop.Loop):
    def __init__(self, handshake_timeout: float) -> None:
        super().__init__()
        self._handshake_timeout = handshake_timeout

    async def create_server(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("ssl") is not None:
            kwargs.setdefault("ssl_handshake_timeout", self._handshake_timeout)
        return await super().create_server(*args, **kwargs)


class _HeadTooLarge(Exception):
    """Raised from a parser callback; httptools re-raises it as the context of its own
    callback error."""


def rewrite_list(data: bytes) -> bytes:
    """``LIST /p?q HTTP/1.1...`` as ``GET /p?q&list=true HTTP/1.1...``; other data as is."""
    if not data.startswith(b"LIST "):
        return data
    end = data.find(b"\r\n")
    if end < 0:
        return data
    parts = data[:end].split(b" ")
    if len(parts) != 3:
        return data
    target = parts[1] + (b"&list=true" if b"?" in parts[1] else b"?list=true")
    return b"GET " + target + b" " + parts[2] + data[end:]


class VaultListProtocol(HttpToolsProtocol):
    def __init__(self, config: Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self._head_timeout: float = getattr(config, "head_timeout", DEFAULT_HEAD_TIMEOUT)
        self._max_head: int = getattr(config, "max_head_bytes", DEFAULT_MAX_HEAD_BYTES)
        self._body_idle: float = getattr(config, "body_idle_timeout", DEFAULT_BODY_IDLE_TIMEOUT)
        self._head_timer: TimerHandle | None = None
        self._body_timer: TimerHandle | None = None
        self._awaiting_head = True  # between requests, or in the middle of a head
        self._body_pending = False  # head whole, body not yet
        self._head_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # A connection that never sends a byte is held only this long.
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        self._cancel_body_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # A request line starts the first chunk of each request on a keep-alive
        # connection (clients such as hvac do not pipeline).
        if data[:5] == b"LIST ":
            data = rewrite_list(data)
        self._unset_keepalive_if_required()
        if self._awaiting_head and self._head_timer is None:
            self._arm_head_timer()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _HeadTooLarge):
                self._answer_and_close(431, "Request header fields too large.")
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        if self._body_pending and not self.transport.is_closing():
            self._arm_body_timer()  # from this chunk on

    # -- parser callbacks: count the head, stop the timer once it is whole ---------------

    def on_message_begin(self) -> None:
        self._awaiting_head = True
        self._head_bytes = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._awaiting_head = False
        self._cancel_head_timer()
        super().on_headers_complete()
        self._body_pending = True  # until on_message_complete (at once without a body)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._body_pending = False
        self._cancel_body_timer()
        # The next byte on this connection starts a new head (and a new timer); while
        # idle in between, uvicorn's keep-alive timeout applies.
        self._awaiting_head = True
        self._head_bytes = 0

    # -- helpers -------------------------------------------------------------------------

    def _count_head(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self._max_head:
            raise _HeadTooLarge

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self._head_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._awaiting_head or self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined head behind a running request: its clock starts when the
            # running one ends (reading is paused meanwhile).
            self._arm_head_timer()
            return
        self._answer_and_close(408, "Request header not received in time.")

    def _arm_body_timer(self) -> None:
        self._cancel_body_timer()
        self._body_timer = self.loop.call_later(self._body_idle, self._body_timed_out)

    def _cancel_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if not self._body_pending or self.transport.is_closing():
            return
        cycle = self.cycle
        if self.flow.read_paused or (cycle is not None and cycle.waiting_for_100_continue):
            # Not the client's fault: we stopped reading, or it waits for our go-ahead.
            self._arm_body_timer()
            return
        self.transport.close()

    def _answer_and_close(self, status: int, msg: str) -> None:
        self._cancel_head_timer()
        if self.transport.is_closing():
            return
        body = msg.encode("ascii")
        self.transport.write(
            b"".join(
                [
                    STATUS_LINE[status],
                    b"content-type: text/plain; charset=utf-8\r\n",
                    b"content-length: %d\r\n" % len(body),
                    b"connection: close\r\n\r\n",
                    body,
                ]
            )
        )
        self.transport.close()
