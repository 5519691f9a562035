"""What an auto-unseal source is: something outside the database that wraps the root key.

The vault's root key (which seals the keyring) is stored wrapped by the source; a node
with the source configured asks it to unwrap the key at start and unseals itself. The
key that wraps never leaves the source (an HSM's AES key, a transit key on another
vault). Each call is bounded: a source that hangs is a source that failed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Protocol, TypeVar

from keysafe.errors import UnsealSourceFailed

__all__ = ["ROOT_KEY_AAD", "UnsealSource", "bounded"]

T = TypeVar("T")

# Bound to every wrapped root key (persisted with the blobs: never change it).
ROOT_KEY_AAD = b"keysafe:root-key:v1"


class UnsealSource(Protocol):
    """Wraps and unwraps the root key. Both raise UnsealSourceFailed (one line, no
    secret in it); ``permanent`` on the error says whether retrying can help."""

    # The seal mode a vault protected by this source records: "pkcs11" or "transit".
    kind: str

    def describe(self) -> str:
        """Where the key lives, for logs and errors (no PIN, no token)."""
        ...

    def wrap(self, root_key: bytes) -> bytes:
        """The root key wrapped by the source (an opaque blob the source can unwrap)."""
        ...

    def unwrap(self, blob: bytes) -> bytes:
        """The root key inside ``blob``."""
        ...


def bounded(call: Callable[[], T], seconds: float, what: str) -> T:
    """``call()`` on a daemon thread, waited for at most ``seconds``: a hung library or
    device raises UnsealSourceFailed instead of freezing the caller."""
    result: Future[T] = Future()

    def run() -> None:
        try:
            result.set_result(call())
        except BaseException as exc:  # handed to the waiting caller
            result.set_exception(exc)

    threading.Thread(target=run, name="ks-unseal-source", daemon=True).start()
    try:
        return result.result(timeout=seconds)
    except TimeoutError as exc:
        raise UnsealSourceFailed(f"{what}: no answer within {seconds:g} s") from exc
