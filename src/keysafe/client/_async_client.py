"""The async SDK client: the same methods as ``Client``, awaited, over httpx.AsyncClient."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import TypeVar

from keysafe.client._async_access import AsyncAccess
from keysafe.client._async_ops import AsyncOps
from keysafe.client._async_secrets import AsyncSecrets
from keysafe.client._async_system import AsyncSystem
from keysafe.client._paths import check_path

T = TypeVar("T")


class AsyncClient(AsyncSecrets, AsyncSystem, AsyncAccess, AsyncOps):
    """A connection to a keysafe server for asyncio programs.

    The same settings, methods, cache, failover and errors as
    :class:`keysafe.client.Client`; every method that talks to the server is a
    coroutine. Use ``async with AsyncClient() as ks:`` (or ``await ks.aclose()``). One
    client may serve many tasks at once.
    """

    def invalidate(self, path: str | None = None) -> None:
        """Forget the cached value of ``path`` (of every path when None)."""
        self._cache.drop(None if path is None else check_path(path))

    async def using(
        self,
        path: str,
        fn: Callable[[str], Awaitable[T]],
        *,
        retry_on: type[BaseException] | tuple[type[BaseException], ...],
    ) -> T:
        """``await fn(value)`` with the value of ``path``; as ``Client.using``, when it
        raises one of ``retry_on`` the value is refetched and, if it changed, ``fn`` is
        awaited once more with the new one."""
        value = await self.get(path)
        try:
            return await fn(value)
        except retry_on:
            fresh = await self.refresh(path)
            # Constant time: the comparison must not leak how much of a value matched.
            if hmac.compare_digest(fresh.encode(), value.encode()):
                raise
        return await fn(fresh)
