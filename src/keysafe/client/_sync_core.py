"""The blocking client's plumbing: settings, the transport, failover, and decoding.

The API methods (``_sync_*.py``) call only ``_send``/``_request``/``_json``/``_text``
here; ``scripts/gen_async_client.py`` turns them into the async client's methods, whose
plumbing is ``_async_core.py``. Request building and reply decoding are ``_wire``'s.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

from keysafe.client._cache import SecretCache
from keysafe.client._config import Connection, resolve
from keysafe.client._failover import (
    Addresses,
    all_failed,
    backoff,
    may_move_after_sending,
    may_move_on_503,
    split_addrs,
)
from keysafe.client._models import Secret, SecretEntry
from keysafe.client._wire import (
    NO_SERVER,
    Reply,
    Request,
    TransportFailure,
    as_dict,
    base_headers,
    decode,
    error_from_reply,
    problem_code,
    tls_context,
)
from keysafe.errors import ConnectionFailed, InvalidInput
from keysafe.redact.registry import remember

if TYPE_CHECKING:
    import httpx

    from keysafe.client._transport import Transport

DEFAULT_CACHE_TTL = 30.0


def settle(
    addr: str | Sequence[str] | None,
    token: str | None,
    cacert: str | Path | None,
    cache_ttl: float,
) -> tuple[Connection, Addresses, SecretCache]:
    """The resolved connection, its addresses and an empty cache (both clients)."""
    if not cache_ttl >= 0:  # also refuses NaN
        raise InvalidInput(f"cache_ttl must be 0 (no cache) or more seconds, not {cache_ttl}")
    if addr is not None and not isinstance(addr, str):
        addr = ",".join(addr)
    conn = resolve(addr, token, cacert)
    if conn.addr is None:
        raise ConnectionFailed(NO_SERVER)
    # Several addresses are nodes of one cluster: the same token and CA for each.
    return conn, Addresses(split_addrs(conn.addr)), SecretCache(cache_ttl)


class SyncCore:
    """Settings, transport and failover of :class:`keysafe.client.Client`."""

    def __init__(
        self,
        addr: str | Sequence[str] | None = None,
        token: str | None = None,
        cacert: str | Path | None = None,
        timeout: float = 10.0,
        *,
        transport: httpx.BaseTransport | Transport | None = None,
        cache_ttl: float = DEFAULT_CACHE_TTL,
        http: Literal["httpx", "stdlib"] = "httpx",
    ) -> None:
        conn, self._addrs, self._cache = settle(addr, token, cacert, cache_ttl)
        self._headers = base_headers(conn.token)
        from keysafe.client import _transport

        if transport is not None and hasattr(transport, "send") and not _is_httpx(transport):
            self._transport: Transport = transport
            return
        tls = tls_context(self._addrs.all, conn.cacert)
        if http == "stdlib" and transport is None:
            # http.client: no httpx import, for programs where start-up time counts.
            self._transport = _transport.StdlibTransport(timeout, tls)
            return
        httpx_layer: Any = transport
        self._transport = _transport.HttpxTransport(timeout, tls, httpx_layer)

    @property
    def addr(self) -> str:
        """The address requests go to first: the one that last answered."""
        return self._addrs.current

    @property
    def addrs(self) -> tuple[str, ...]:
        """Every address this client may use, in the order given."""
        return self._addrs.all

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(addr={self.addr!r})"

    # -- plumbing used by the API methods ------------------------------------------------

    def _saw(self, item: Secret | SecretEntry) -> None:
        if item.value is not None:
            self._saw_value(item.path, item.value)

    def _saw_value(self, path: str, value: str) -> None:
        # For keysafe.redact: a digest of every value read, never the value itself.
        remember(path, value)

    def _json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        doc = self._request(method, url, **kwargs)
        return as_dict(doc, self.addr + url)

    def _request(self, method: str, url: str, **kwargs: Any) -> Any:
        reply = self._send(method, url, **kwargs)
        return decode(reply, self.addr + url)

    def _text(self, url: str, params: Mapping[str, str]) -> str:
        reply = self._send("GET", url, params=dict(params))
        if reply.status >= 400:
            raise error_from_reply(reply)
        return reply.text

    def _send(self, method: str, url: str, **kwargs: Any) -> Reply:
        """Send to the current address, moving on to the next ones only when that is
        safe (see ``keysafe.client._failover``); the address that answers stays current.

        Raises ConnectionFailed when no address answered."""
        request = Request(method, url, **kwargs)
        headers = request.merged_headers(self._headers)
        errors: list[tuple[str, str]] = []
        refused: Reply | None = None
        last: TransportFailure | None = None
        several = len(self._addrs.all) > 1
        for attempt, (index, addr) in enumerate(self._addrs.order()):
            time.sleep(backoff(attempt))
            try:
                reply = self._transport.send(addr, request, headers)
            except TransportFailure as exc:
                if exc.sent and not may_move_after_sending(method):
                    # The server may have acted on it: resending could do it twice.
                    raise ConnectionFailed(exc.reason) from exc
                last = exc
                errors.append((addr, exc.reason))
                continue
            if several and reply.status == 503 and may_move_on_503(method, problem_code(reply)):
                refused = refused or reply
                continue
            self._addrs.worked(index)
            return reply
        if refused is not None:
            return refused  # a node's own answer says more than a refused connection
        raise all_failed(errors) from last


def _is_httpx(transport: object) -> bool:
    # An httpx transport has handle_request; keysafe's own transports have send().
    return hasattr(transport, "handle_request") or hasattr(transport, "handle_async_request")
