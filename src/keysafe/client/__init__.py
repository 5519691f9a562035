"""The keysafe Python SDK.

::

    from keysafe.client import Client

    with Client() as ks:                      # KEYSAFE_ADDR/TOKEN/CACERT, else the profile
        password = ks.get("payments/dev/DB_PASSWORD")

    async with AsyncClient() as ks:           # the same methods, awaited
        password = await ks.get("payments/dev/DB_PASSWORD")

Errors are the classes of ``keysafe.errors`` (NotFound, Forbidden, ConnectionFailed...).
Importing this package pulls in nothing server-side.

The names below load on first use (PEP 562): httpx costs ~150 ms to import, and the CLI's
fast path reads the profile through ``keysafe.client._config`` without paying for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keysafe.client._async_client import AsyncClient
    from keysafe.client._client import Client
    from keysafe.client._models import (
        AuditReport,
        Health,
        InitResult,
        IssuedToken,
        RewrapProgress,
        SealStatus,
        Secret,
        SecretEntry,
        SecretHistory,
        SecretMetadata,
        SecretVersion,
        TokenInfo,
    )

__all__ = [
    "AsyncClient",
    "AuditReport",
    "Client",
    "Health",
    "InitResult",
    "IssuedToken",
    "RewrapProgress",
    "SealStatus",
    "Secret",
    "SecretEntry",
    "SecretHistory",
    "SecretMetadata",
    "SecretVersion",
    "TokenInfo",
]

# Where each public name lives; a static table, not dynamic dispatch.
_HOMES = dict.fromkeys(__all__, "keysafe.client._models") | {
    "Client": "keysafe.client._client",
    "AsyncClient": "keysafe.client._async_client",
}


def __getattr__(name: str) -> Any:
    module = _HOMES.get(name)
    if module is None:
        raise AttributeError(f"module 'keysafe.client' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
