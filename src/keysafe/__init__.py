"""keysafe: a self-hosted secrets and API-key manager.

The package root stays import-light so that ``keysafe`` starts fast; the SDK lives in
``keysafe.client`` and is re-exported lazily here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Client", "__version__"]

if TYPE_CHECKING:
    from keysafe.client import Client


def __getattr__(name: str) -> Any:
    # Lazy re-export: importing keysafe must not pull in httpx for the CLI's sake.
    if name == "Client":
        from keysafe.client import Client

        return Client
    raise AttributeError(name)
