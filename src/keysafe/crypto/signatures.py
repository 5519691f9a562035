"""Verifying signed reports from secret-scanning partners (ECDSA P-256 over SHA-256).

GitHub's secret-scanning partner programme signs the raw body of each report with an
ECDSA P-256 key and sends ``Github-Public-Key-Identifier`` (which key) and
``Github-Public-Key-Signature`` (base64 of the DER signature). Partners' public keys
are configured in a file, in the shape GitHub publishes them at
``https://api.github.com/meta/public_keys/secret_scanning``::

    {"public_keys": [{"key_identifier": "90a4...", "key": "-----BEGIN PUBLIC KEY-----...",
                      "is_current": true}]}

A plain ``{"<identifier>": "<PEM>"}`` object is accepted too. Only P-256 keys load.

Every way a signature can fail (unknown identifier, malformed base64, wrong length,
bad DER, wrong signature) raises the one vague :class:`SignatureInvalid`, so that a
forger learns nothing about which part was wrong.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

__all__ = ["PartnerKeys", "SignatureInvalid", "load_partner_keys", "sign_for_tests"]

MAX_IDENTIFIER_LENGTH = 128
MAX_SIGNATURE_LENGTH = 256  # base64 of a DER P-256 signature is at most 96 characters


class SignatureInvalid(Exception):
    """The report's signature does not verify against a configured key (one reason)."""


class PartnerKeys:
    """The configured partner public keys, by identifier; verifies signed bodies."""

    def __init__(self, keys: Mapping[str, ec.EllipticCurvePublicKey]) -> None:
        self._keys = dict(keys)

    def __len__(self) -> int:
        return len(self._keys)

    def identifiers(self) -> list[str]:
        return sorted(self._keys)

    def verify(self, identifier: str, signature_b64: str, body: bytes) -> None:
        """Return if ``signature_b64`` is a valid ECDSA P-256/SHA-256 signature of
        ``body`` by the key named ``identifier``; raise SignatureInvalid otherwise."""
        key = self._keys.get(identifier)
        if key is None or len(signature_b64) > MAX_SIGNATURE_LENGTH:
            raise SignatureInvalid("signature does not verify")
        try:
            signature = base64.b64decode(signature_b64.strip(), validate=True)
            key.verify(signature, body, ec.ECDSA(hashes.SHA256()))
        except (binascii.Error, ValueError, InvalidSignature):
            raise SignatureInvalid("signature does not verify") from None


def load_partner_keys(path: Path | None) -> PartnerKeys:
    """The keys in ``path`` (see the module docstring); no path means no keys.

    Raises ValueError naming the problem when the file cannot be read, is not JSON of
    either shape, or holds a key that is not an ECDSA P-256 public key.
    """
    if path is None:
        return PartnerKeys({})
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read the leak report keys file {path}: {exc.strerror}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"the leak report keys file {path} is not JSON: {exc}") from exc
    pairs = _pairs(doc)
    if pairs is None:
        raise ValueError(
            f"the leak report keys file {path} holds neither"
            ' {"public_keys": [{"key_identifier", "key"}]} nor {"<identifier>": "<PEM>"}'
        )
    keys: dict[str, ec.EllipticCurvePublicKey] = {}
    for identifier, pem in pairs:
        if not identifier or len(identifier) > MAX_IDENTIFIER_LENGTH:
            raise ValueError(f"a key identifier in {path} is empty or too long")
        keys[identifier] = _p256(identifier, pem)
    return PartnerKeys(keys)


def _pairs(doc: object) -> list[tuple[str, str]] | None:
    if isinstance(doc, dict) and isinstance(doc.get("public_keys"), list):
        out = []
        for entry in doc["public_keys"]:
            if not isinstance(entry, dict):
                return None
            ident, pem = entry.get("key_identifier"), entry.get("key")
            if not isinstance(ident, str) or not isinstance(pem, str):
                return None
            out.append((ident, pem))
        return out
    if isinstance(doc, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in doc.items()
    ):
        return [(str(k), str(v)) for k, v in doc.items()]
    return None


def _p256(identifier: str, pem: str) -> ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except ValueError as exc:
        raise ValueError(f"key {identifier!r} is not a PEM public key") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(f"key {identifier!r} is not an ECDSA P-256 public key")
    return key


def sign_for_tests(private_key: ec.EllipticCurvePrivateKey, body: bytes) -> str:
    """The header value a partner would send for ``body`` (base64 DER signature).

    For tests and for operators checking their configuration; keysafe never signs
    reports itself.
    """
    return base64.b64encode(private_key.sign(body, ec.ECDSA(hashes.SHA256()))).decode()
