"""The root key and its two text forms: Shamir shares and the single unseal key.

Shares are SLIP-39 mnemonics (``shamir-mnemonic``): words with a checksum, so a typo is
caught when the share is entered rather than after the threshold is reached. The single
unseal key (embedded mode, key files, ``KEYSAFE_UNSEAL_KEY``) is ``ksu1_`` plus the
base64url root key, with a CRC so a truncated file is reported as such.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import zlib

import shamir_mnemonic

from keysafe.crypto.envelope import KEY_BYTES, generate_key

UNSEAL_KEY_PREFIX = "ksu1_"


class BadShare(ValueError):
    """A share or unseal key that is malformed (typo, truncation, wrong set)."""


def new_root_key() -> bytes:
    return generate_key()


def recovery_digest(recovery_key: bytes) -> bytes:
    """What the keyring keeps to recognise a recovery key (never the key itself)."""
    return hmac.new(recovery_key, b"keysafe:recovery-key:v1", hashlib.sha256).digest()


def is_recovery_key(recovery_key: bytes, digest: bytes | None) -> bool:
    """Constant-time check of a rebuilt recovery key against the keyring's digest."""
    return digest is not None and hmac.compare_digest(recovery_digest(recovery_key), digest)


def split(root_key: bytes, shares: int, threshold: int) -> list[str]:
    """``shares`` mnemonics of which any ``threshold`` rebuild ``root_key``."""
    if not 1 <= threshold <= shares <= 16:
        raise ValueError("need 1 <= threshold <= shares <= 16")
    if threshold == 1 and shares > 1:
        # SLIP-39 forbids 1-of-n member groups; n identical 1-of-1 shares mean the same.
        single = shamir_mnemonic.generate_mnemonics(1, [(1, 1)], root_key, b"")[0][0]
        return [single] * shares
    groups = shamir_mnemonic.generate_mnemonics(1, [(threshold, shares)], root_key, b"")
    return list(groups[0])


def check_share(mnemonic: str) -> str:
    """Normalise one share and verify its checksum; raises BadShare."""
    words = " ".join(mnemonic.strip().lower().split())
    try:
        shamir_mnemonic.Share.from_mnemonic(words)
    except (shamir_mnemonic.MnemonicError, ValueError, KeyError) as exc:
        # The library's message quotes the share's words: never echo them.
        raise BadShare("not a valid unseal share (checksum mismatch: check for a typo)") from exc
    return words


def combine(mnemonics: list[str]) -> bytes:
    """Rebuild the root key from enough shares; raises BadShare."""
    try:
        secret = bytes(shamir_mnemonic.combine_mnemonics(mnemonics, b""))
    except (shamir_mnemonic.MnemonicError, ValueError) as exc:
        raise BadShare("the shares do not belong together or are too few") from exc
    if len(secret) != KEY_BYTES:
        raise BadShare("the shares do not encode a keysafe root key")
    return secret


def share_threshold(mnemonic: str) -> int:
    """The member threshold a share declares."""
    share = shamir_mnemonic.Share.from_mnemonic(mnemonic)
    return int(share.member_threshold)


def encode_unseal_key(root_key: bytes) -> str:
    body = base64.urlsafe_b64encode(root_key).decode().rstrip("=")
    return f"{UNSEAL_KEY_PREFIX}{body}.{zlib.crc32(root_key):08x}"


def decode_unseal_key(text: str) -> bytes:
    """The root key inside an unseal key; raises BadShare."""
    text = text.strip()
    if not text.startswith(UNSEAL_KEY_PREFIX) or "." not in text:
        raise BadShare("not a keysafe unseal key (expected ksu1_...)")
    body, _, check = text[len(UNSEAL_KEY_PREFIX) :].rpartition(".")
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except ValueError as exc:
        raise BadShare("unseal key is not valid base64") from exc
    if len(raw) != KEY_BYTES or f"{zlib.crc32(raw):08x}" != check:
        raise BadShare("unseal key is truncated or altered")
    return raw
