"""Checksums carried by some token formats, so look-alikes can be told apart offline."""

from __future__ import annotations

import base64
import binascii
import json
import zlib

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def base62(number: int, width: int) -> str:
    """``number`` in base62, left-padded with zeros to ``width`` characters."""
    chars = []
    for _ in range(width):
        number, rem = divmod(number, 62)
        chars.append(_BASE62[rem])
    return "".join(reversed(chars))


def github_checksum(entropy: str) -> str:
    """The 6-character CRC32/base62 checksum GitHub appends to a token's random part."""
    return base62(zlib.crc32(entropy.encode("ascii")), 6)


def github_token_valid(token: str) -> bool:
    """True when a ``gh?_`` token's last six characters are the checksum of the rest."""
    _, _, body = token.partition("_")
    if len(body) != 36:
        return False
    return github_checksum(body[:30]) == body[30:]


def jwt_valid(token: str) -> bool:
    """True when the first part of ``token`` decodes to a JSON header naming an ``alg``."""
    head = token.split(".", 1)[0]
    try:
        raw = base64.urlsafe_b64decode(head + "=" * (-len(head) % 4))
        header = json.loads(raw)
    except (binascii.Error, ValueError):
        return False
    return isinstance(header, dict) and "alg" in header


def jwt_is_example(token: str) -> bool:
    """True for the sample tokens of JWT documentation (jwt.io's "John Doe", subject
    1234567890; PyJWT's ``{"some": "payload"}``), pasted into countless READMEs."""
    parts = token.split(".")
    if len(parts) < 2:
        return False
    body = parts[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (binascii.Error, ValueError):
        return False
    if not isinstance(claims, dict):
        return False
    return claims == {"some": "payload"} or (
        claims.get("sub") == "1234567890" and claims.get("name") == "John Doe"
    )
