"""PKCS#11 unseal source: the root key wrapped with AES-256-GCM by a key inside an HSM.

Built on ``python-pkcs11``. Every operation opens a session, logs in with the user PIN,
finds the AES key by label, runs one encrypt or decrypt inside the token and closes the
session, so a token removed and put back is picked up at the next attempt. A wrong PIN
is reported as permanent: HSMs lock a token after a few wrong PINs, so it is never
retried by itself.
"""

from __future__ import annotations

import base64
import os
import threading
from pathlib import Path
from typing import Any

import orjson

from keysafe.errors import UnsealSourceFailed
from keysafe.unseal.source import ROOT_KEY_AAD, bounded

__all__ = ["Pkcs11Source"]

_NONCE_BYTES = 12
_TAG_BITS = 128
_BLOB_VERSION = 1  # persisted in wrapped root keys: only ever add


class Pkcs11Source:
    """An AES key in a PKCS#11 token, found by token label and key label."""

    kind = "pkcs11"

    def __init__(
        self,
        library: Path,
        token_label: str,
        pin: str,
        key_label: str,
        *,
        generate_key: bool = False,
        timeout: float = 10.0,
    ) -> None:
        self._library = library
        self._token_label = token_label
        self._pin = pin
        self._key_label = key_label
        self._generate_key = generate_key
        self._timeout = timeout
        # One operation at a time: some PKCS#11 libraries dislike concurrent logins.
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"PKCS#11 key {self._key_label!r} on token {self._token_label!r}"

    def wrap(self, root_key: bytes) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._run(lambda key: self._encrypt(key, root_key, nonce), create=True)
        doc = {
            "v": _BLOB_VERSION,
            "kind": self.kind,
            "key": self._key_label,
            "nonce": base64.b64encode(nonce).decode(),
            "ct": base64.b64encode(sealed).decode(),
        }
        return orjson.dumps(doc)

    def unwrap(self, blob: bytes) -> bytes:
        try:
            doc = orjson.loads(blob)
            nonce = base64.b64decode(doc["nonce"])
            sealed = base64.b64decode(doc["ct"])
            label = str(doc["key"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise UnsealSourceFailed("the stored root key is not a PKCS#11-wrapped key") from exc
        if doc.get("kind") != self.kind or doc.get("v") != _BLOB_VERSION:
            raise UnsealSourceFailed("the stored root key is not a PKCS#11-wrapped key")
        if label != self._key_label:
            raise UnsealSourceFailed(
                f"the root key is wrapped by PKCS#11 key {label!r}, not the configured "
                f"{self._key_label!r}",
                permanent=True,
            )
        return self._run(lambda key: self._decrypt(key, sealed, nonce), create=False)

    # -- inside the token ----------------------------------------------------------------

    @staticmethod
    def _params(nonce: bytes) -> Any:
        import pkcs11

        return pkcs11.GCMParams(nonce, ROOT_KEY_AAD, _TAG_BITS)

    def _encrypt(self, key: Any, plaintext: bytes, nonce: bytes) -> bytes:
        import pkcs11

        return bytes(
            key.encrypt(
                plaintext, mechanism=pkcs11.Mechanism.AES_GCM, mechanism_param=self._params(nonce)
            )
        )

    def _decrypt(self, key: Any, sealed: bytes, nonce: bytes) -> bytes:
        import pkcs11

        return bytes(
            key.decrypt(
                sealed, mechanism=pkcs11.Mechanism.AES_GCM, mechanism_param=self._params(nonce)
            )
        )

    def _run(self, operation: Any, *, create: bool) -> bytes:
        with self._lock:
            result: bytes = bounded(
                lambda: self._in_session(operation, create), self._timeout, self.describe()
            )
            return result

    def _in_session(self, operation: Any, create: bool) -> bytes:
        import pkcs11
        from pkcs11 import exceptions as p11

        where = self.describe()
        try:
            lib = pkcs11.lib(str(self._library))
            # Rescan the slots: a token removed or inserted since the last attempt.
            lib.reinitialize()
            token = lib.get_token(token_label=self._token_label)
            with token.open(user_pin=self._pin, rw=create and self._generate_key) as session:
                key = self._find_key(session, create)
                return bytes(operation(key))
        except UnsealSourceFailed:
            raise
        except (p11.PinIncorrect, p11.PinInvalid, p11.PinLenRange) as exc:
            raise UnsealSourceFailed(
                f"{where}: login refused: wrong PIN (not retried: HSMs lock after a few)",
                permanent=True,
            ) from exc
        except p11.PinLocked as exc:
            raise UnsealSourceFailed(f"{where}: the token's PIN is locked", permanent=True) from exc
        except (p11.NoSuchToken, p11.TokenNotPresent, p11.TokenNotRecognised) as exc:
            raise UnsealSourceFailed(f"{where}: token not found (removed?)") from exc
        except RuntimeError as exc:  # the library itself cannot be loaded
            raise UnsealSourceFailed(
                f"{where}: cannot load the PKCS#11 library {self._library}", permanent=True
            ) from exc
        except p11.PKCS11Error as exc:
            # Decryption failures included: one vague answer, the details stay inside.
            raise UnsealSourceFailed(f"{where}: {type(exc).__name__}") from exc

    def _find_key(self, session: Any, create: bool) -> Any:
        from pkcs11 import Attribute, KeyType, ObjectClass
        from pkcs11 import exceptions as p11

        try:
            return session.get_key(
                label=self._key_label, key_type=KeyType.AES, object_class=ObjectClass.SECRET_KEY
            )
        except p11.NoSuchKey:
            if not (create and self._generate_key):
                raise UnsealSourceFailed(
                    f"{self.describe()}: no such AES key on the token "
                    "(create it, or set KEYSAFE_PKCS11_GENERATE_KEY=true for init)"
                ) from None
        except p11.MultipleObjectsReturned:
            raise UnsealSourceFailed(
                f"{self.describe()}: several keys have this label", permanent=True
            ) from None
        # Created inside the token, never extractable: the key does not leave the HSM.
        return session.generate_key(
            KeyType.AES,
            256,
            label=self._key_label,
            store=True,
            template={
                Attribute.EXTRACTABLE: False,
                Attribute.SENSITIVE: True,
            },
        )
