"""The format of every credential keysafe issues.

``ks_<kind>_<random><check>``: ``kind`` is 2-8 lowercase letters naming what the
credential is (``root``, ``tok``; later issues add others), ``random`` is 32 base62
characters (about 190 bits from ``secrets``), ``check`` is the CRC32 of everything before
it, in 6 base62 characters. The prefix lets a scanner find keysafe credentials, the
checksum lets it tell a real one from look-alike text offline, without the server.

This format is persisted in the field: only ever add kinds, never change the layout.
Pure functions, no I/O: the scanner imports this module.
"""

from __future__ import annotations

import re
import secrets
import zlib

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
RANDOM_LEN = 32
CHECK_LEN = 6

# Kinds in use; persisted, only ever add.
KIND_ROOT = "root"
KIND_TOKEN = "tok"  # noqa: S105 - a kind label, not a credential
KIND_LIVE_KEY = "live"  # API keys issued to services
KIND_SESSION = "sess"  # people's login sessions

PATTERN = re.compile(rf"\bks_([a-z]{{2,8}})_([0-9A-Za-z]{{{RANDOM_LEN + CHECK_LEN}}})\b")


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, rem = divmod(number, 62)
        chars.append(ALPHABET[rem])
    return "".join(reversed(chars))


def checksum(body: str) -> str:
    """The 6-character checksum of ``ks_<kind>_<random>``."""
    return _base62(zlib.crc32(body.encode("ascii")), CHECK_LEN)


def generate(kind: str) -> str:
    """A new credential of ``kind`` with a valid checksum."""
    if not re.fullmatch(r"[a-z]{2,8}", kind):
        raise ValueError(f"invalid credential kind {kind!r}")
    random_part = "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_LEN))
    body = f"ks_{kind}_{random_part}"
    return body + checksum(body)


def parse(credential: str) -> str | None:
    """The kind of a well-formed credential with a valid checksum, else ``None``."""
    match = PATTERN.fullmatch(credential)
    if match is None:
        return None
    tail = match.group(2)
    body = f"ks_{match.group(1)}_{tail[:RANDOM_LEN]}"
    if not secrets.compare_digest(checksum(body), tail[RANDOM_LEN:]):
        return None
    return match.group(1)


def is_valid(credential: str) -> bool:
    """True when ``credential`` is a keysafe credential whose checksum holds."""
    return parse(credential) is not None
