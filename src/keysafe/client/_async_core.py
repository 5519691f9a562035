"""The async client's plumbing: ``_sync_core`` over ``httpx.AsyncClient``.

Settings, failover decisions, request building and reply decoding are the same
functions the blocking client uses (``_failover``, ``_wire``); only the waiting differs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from keysafe.client._failover import all_failed, backoff, may_move_after_sending, may_move_on_503
from keysafe.client._models import Secret, SecretEntry
from keysafe.client._sync_core import DEFAULT_CACHE_TTL, settle
from keysafe.client._wire import (
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
from keysafe.errors import ConnectionFailed
from keysafe.redact.registry import remember

if TYPE_CHECKING:
    import httpx


class AsyncCore:
    """Settings, transport and failover of :class:`keysafe.client.AsyncClient`."""

    def __init__(
        self,
        addr: str | Sequence[str] | None = None,
        token: str | None = None,
        cacert: str | Path | None = None,
        timeout: float = 10.0,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        cache_ttl: float = DEFAULT_CACHE_TTL,
    ) -> None:
        import httpx

        conn, self._addrs, self._cache = settle(addr, token, cacert, cache_ttl)
        self._headers = base_headers(conn.token)
        tls = tls_context(self._addrs.all, conn.cacert)
        self._http = httpx.AsyncClient(
            timeout=timeout,
            verify=tls if tls is not None else False,
            transport=transport,
            follow_redirects=False,  # a redirect must never carry the token elsewhere
        )

    @property
    def addr(self) -> str:
        """The address requests go to first: the one that last answered."""
        return self._addrs.current

    @property
    def addrs(self) -> tuple[str, ...]:
        """Every address this client may use, in the order given."""
        return self._addrs.all

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(addr={self.addr!r})"

    # -- plumbing used by the API methods ------------------------------------------------

    def _saw(self, item: Secret | SecretEntry) -> None:
        if item.value is not None:
            self._saw_value(item.path, item.value)

    def _saw_value(self, path: str, value: str) -> None:
        # For keysafe.redact: a digest of every value read, never the value itself.
        remember(path, value)

    async def _json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        doc = await self._request(method, url, **kwargs)
        return as_dict(doc, self.addr + url)

    async def _request(self, method: str, url: str, **kwargs: Any) -> Any:
        reply = await self._send(method, url, **kwargs)
        return decode(reply, self.addr + url)

    async def _text(self, url: str, params: Mapping[str, str]) -> str:
        reply = await self._send("GET", url, params=dict(params))
        if reply.status >= 400:
            raise error_from_reply(reply)
        return reply.text

    async def _send(self, method: str, url: str, **kwargs: Any) -> Reply:
        """As ``SyncCore._send``: the same failover rules, awaiting instead of blocking."""
        request = Request(method, url, **kwargs)
        headers = request.merged_headers(self._headers)
        errors: list[tuple[str, str]] = []
        refused: Reply | None = None
        last: TransportFailure | None = None
        several = len(self._addrs.all) > 1
        for attempt, (index, addr) in enumerate(self._addrs.order()):
            await asyncio.sleep(backoff(attempt))
            try:
                reply = await self._deliver(addr, request, headers)
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

    async def _deliver(self, addr: str, request: Request, headers: Mapping[str, str]) -> Reply:
        import httpx

        from keysafe.client._transport import httpx_reason

        body, ctype = request.body()
        sent_headers = dict(headers) | ({"Content-Type": ctype} if ctype else {})
        try:
            resp = await self._http.request(
                request.method, addr + request.target(), content=body, headers=sent_headers
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise TransportFailure(httpx_reason(addr, exc), sent=False) from exc
        except httpx.TransportError as exc:
            raise TransportFailure(httpx_reason(addr, exc), sent=True) from exc
        return Reply(
            resp.status_code, resp.content, {k.lower(): v for k, v in resp.headers.items()}
        )
