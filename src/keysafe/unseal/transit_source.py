"""Transit unseal source: the root key wrapped by a key that stays in another vault.

Speaks Vault's transit API (``POST /v1/<mount>/encrypt/<key>`` and ``.../decrypt/<key>``
with ``X-Vault-Token``), which keysafe serves too (``keysafe.server.routes.transit``),
so one keysafe can auto-unseal another, or a Vault can. The address is an admin's
setting, never a caller's; TLS is verified (a CA bundle may be given); every request
is bounded; redirects are not followed (the token goes to the configured server only).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import orjson

from keysafe.errors import UnsealSourceFailed

__all__ = ["TransitSource"]

_BLOB_VERSION = 1  # persisted in wrapped root keys: only ever add


class TransitSource:
    """A named transit key on the vault at ``address``."""

    kind = "transit"

    def __init__(
        self,
        address: str,
        token: str,
        key_name: str,
        *,
        mount: str = "transit",
        cacert: Path | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._address = address.rstrip("/")
        self._token = token
        self._key_name = key_name
        self._mount = mount.strip("/")
        self._cacert = cacert
        self._timeout = timeout

    def describe(self) -> str:
        return f"transit key {self._key_name!r} at {self._address}"

    def wrap(self, root_key: bytes) -> bytes:
        reply = self._post("encrypt", {"plaintext": base64.b64encode(root_key).decode()})
        ciphertext = reply.get("ciphertext")
        if not isinstance(ciphertext, str) or not ciphertext:
            raise UnsealSourceFailed(f"{self.describe()}: the answer holds no ciphertext")
        doc = {"v": _BLOB_VERSION, "kind": self.kind, "key": self._key_name, "ct": ciphertext}
        return orjson.dumps(doc)

    def unwrap(self, blob: bytes) -> bytes:
        try:
            doc = orjson.loads(blob)
            ciphertext = str(doc["ct"])
            key_name = str(doc["key"])
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise UnsealSourceFailed("the stored root key is not a transit-wrapped key") from exc
        if doc.get("kind") != self.kind or doc.get("v") != _BLOB_VERSION:
            raise UnsealSourceFailed("the stored root key is not a transit-wrapped key")
        if key_name != self._key_name:
            raise UnsealSourceFailed(
                f"the root key is wrapped by transit key {key_name!r}, not the configured "
                f"{self._key_name!r}",
                permanent=True,
            )
        reply = self._post("decrypt", {"ciphertext": ciphertext})
        try:
            return base64.b64decode(str(reply["plaintext"]), validate=True)
        except (KeyError, ValueError) as exc:
            raise UnsealSourceFailed(f"{self.describe()}: the answer holds no plaintext") from exc

    def _post(self, operation: str, body: dict[str, str]) -> dict[str, Any]:
        url = f"{self._address}/v1/{self._mount}/{operation}/{self._key_name}"
        verify: Any = str(self._cacert) if self._cacert is not None else True
        try:
            with httpx.Client(
                verify=verify, timeout=self._timeout, follow_redirects=False, trust_env=False
            ) as client:
                response = client.post(url, json=body, headers={"X-Vault-Token": self._token})
        except httpx.HTTPError as exc:
            raise UnsealSourceFailed(
                f"{self.describe()}: cannot reach it ({type(exc).__name__})"
            ) from exc
        if response.status_code != 200:
            raise UnsealSourceFailed(
                f"{self.describe()}: {operation} answered {response.status_code}"
                f"{_first_error(response)}"
            )
        try:
            data = response.json()["data"]
        except (ValueError, KeyError, TypeError) as exc:
            raise UnsealSourceFailed(f"{self.describe()}: not a transit answer") from exc
        if not isinstance(data, dict):
            raise UnsealSourceFailed(f"{self.describe()}: not a transit answer")
        return data


def _first_error(response: httpx.Response) -> str:
    """Vault's first ``errors`` entry (one line, bounded) when the answer has one."""
    try:
        errors = response.json().get("errors")
    except ValueError:
        return ""
    if isinstance(errors, list) and errors and isinstance(errors[0], str):
        return ": " + errors[0].splitlines()[0][:200]
    return ""
