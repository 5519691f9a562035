"""The LIST request-line rewrite for Vault clients, and the request-head bounds."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from uvicorn.server import ServerState

from keysafe.server.protocol import HardenedConfig, VaultListProtocol, rewrite_list


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            b"LIST /v1/secret/metadata/app HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /v1/secret/metadata/app?list=true HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
        (b"LIST /v1/x?a=1 HTTP/1.1\r\n\r\n", b"GET /v1/x?a=1&list=true HTTP/1.1\r\n\r\n"),
        (b"GET /v1/x HTTP/1.1\r\n\r\n", b"GET /v1/x HTTP/1.1\r\n\r\n"),
        (b"LIST /v1/x", b"LIST /v1/x"),  # incomplete request line: left to the parser
        (b"LIST a b c\r\n", b"LIST a b c\r\n"),
    ],
)
def test_rewrite(raw: bytes, expected: bytes) -> None:
    assert rewrite_list(raw) == expected


# -- the head bounds, driven in memory --------------------------------------------------


class MemoryTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"peername": ("10.1.2.3", 5000), "sockname": ("127.0.0.1", 8200)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _ok_app(scope: dict[str, object], receive: object, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _slow_app(scope: dict[str, object], receive: object, send: Any) -> None:
    await asyncio.sleep(0.3)  # deciding (say, authenticating) before reading the body
    await _ok_app(scope, receive, send)


def _connect(app: Any = _ok_app, **limits: Any) -> tuple[VaultListProtocol, MemoryTransport]:
    config = HardenedConfig(app, log_level="warning", **limits)
    config.load()
    protocol = VaultListProtocol(config, ServerState(), {}, _loop=asyncio.get_running_loop())
    transport = MemoryTransport()
    protocol.connection_made(transport)
    return protocol, transport


@pytest.mark.anyio
async def test_silent_connection_is_answered_408_and_closed() -> None:
    _protocol, transport = _connect(head_timeout=0.05)
    for _ in range(200):
        if transport.closed:
            break
        await asyncio.sleep(0.01)
    assert transport.closed
    assert transport.written.startswith(b"HTTP/1.1 408 ")


@pytest.mark.anyio
async def test_head_over_the_limit_is_431_even_in_small_chunks() -> None:
    protocol, transport = _connect(max_head_bytes=1024)
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n")
    for _ in range(40):  # 40 x 40 bytes of one header, sent piecemeal
        protocol.data_received(b"X-Pad-" + b"a" * 30 + b": 1\r\n")
        if transport.closed:
            break
    assert transport.closed
    assert transport.written.startswith(b"HTTP/1.1 431 ")


@pytest.mark.anyio
async def test_a_whole_head_within_the_limits_is_served() -> None:
    protocol, transport = _connect(head_timeout=0.05, max_head_bytes=1024)
    protocol.data_received(b"LIST /v1/secret/metadata HTTP/1.1\r\nHost: x\r\n\r\n")
    for _ in range(100):
        if transport.written:
            break
        await asyncio.sleep(0.01)
    assert transport.written.startswith(b"HTTP/1.1 200 ")
    await asyncio.sleep(0.1)  # past the head timeout: served, so not cut off
    assert not transport.closed


async def _wait_closed(transport: MemoryTransport, seconds: float = 2.0) -> bool:
    for _ in range(int(seconds / 0.01)):
        if transport.closed:
            return True
        await asyncio.sleep(0.01)
    return transport.closed


@pytest.mark.anyio
async def test_body_that_stops_arriving_closes_the_connection() -> None:
    protocol, transport = _connect(body_idle_timeout=0.05)
    protocol.data_received(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
    assert await _wait_closed(transport)


@pytest.mark.anyio
async def test_client_awaiting_100_continue_is_not_cut_off() -> None:
    protocol, transport = _connect(_slow_app, body_idle_timeout=0.05)
    head = b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
    protocol.data_received(head)
    # No 100 Continue yet (the app has not asked for the body): the client may wait.
    assert not await _wait_closed(transport, 0.2)
    await asyncio.sleep(0.2)
    assert transport.written.startswith(b"HTTP/1.1 200 ")
