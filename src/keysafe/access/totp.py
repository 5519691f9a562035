"""TOTP second factor (RFC 6238) and single-use recovery codes.

TOTP uses what every authenticator app understands: SHA-1, 6 digits, 30-second steps,
a 160-bit secret (RFC 4226 section 4 recommends 160 bits). ``verify_totp`` accepts one
step either side for clock drift and returns the step it matched, so the caller stores
it and refuses any code from that step or earlier: a code seen over a shoulder or in a
proxy log cannot be replayed.

Recovery codes are 12 characters of Crockford's base32 (no i, l, o, u; 60 bits), shown
as ``xxxx-xxxx-xxxx``. Only HMAC-SHA256 under a server key is stored, so a stolen
database alone cannot test guesses; the key lives in the keyring.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import io
import re
import secrets
from collections.abc import Sequence

import pyotp
import segno

from keysafe.errors import IntegrityError, InvalidInput

__all__ = [
    "RECOVERY_CODE_ALPHABET",
    "TOTP_DIGITS",
    "TOTP_STEP_SECONDS",
    "hash_recovery_code",
    "new_recovery_codes",
    "new_totp_secret",
    "normalise_recovery_code",
    "provisioning_uri",
    "qr_text",
    "verify_recovery_code",
    "verify_totp",
]

TOTP_DIGITS = 6
TOTP_STEP_SECONDS = 30
_VALID_WINDOW = 1  # steps accepted either side of now: up to ~30 s of clock drift
_CODE = re.compile(r"[0-9]{6}")  # ASCII digits only: "١٢٣٤٥٦" is not a code

# Crockford's base32: 32 symbols, none of them easily confused with another.
RECOVERY_CODE_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_RECOVERY_CODE_CHARS = 12  # x 5 bits = 60 bits
_RECOVERY_GROUP = 4
# What people type for the symbols Crockford leaves out.
_LOOKALIKES = str.maketrans({"o": "0", "i": "1", "l": "1"})
# Domain separation: the same server key may serve other HMACs. Persisted: never change.
_RECOVERY_HMAC_PREFIX = b"keysafe:recovery-code:v1:"
_MIN_KEY_BYTES = 16

# ANSI: bright white on black, so the light modules are light whatever the terminal theme.
_ANSI_ON = "\x1b[97;40m"
_ANSI_OFF = "\x1b[0m"


# -- TOTP --------------------------------------------------------------------------------


def new_totp_secret() -> str:
    """A fresh 160-bit TOTP secret, base32 as authenticator apps expect it."""
    return pyotp.random_base32(length=32)


def provisioning_uri(secret: str, account: str, issuer: str = "keysafe") -> str:
    """The ``otpauth://totp/...`` URI an authenticator app enrols from (holds the secret:
    show it to its owner only, never log it)."""
    return pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_STEP_SECONDS).provisioning_uri(
        name=account, issuer_name=issuer
    )


def qr_text(uri: str, *, ansi: bool = False) -> str:
    """``uri`` as a QR code drawn with Unicode half blocks, two modules per character row,
    with the standard 4-module quiet zone.

    Plain text draws light modules as blocks, which reads correctly on the usual dark
    terminal background. ``ansi=True`` also forces white-on-black colours so the code
    scans on light themes too."""
    qr = segno.make_qr(uri, error="m")
    out = io.StringIO()
    qr.terminal(out=out, compact=True)
    lines = out.getvalue().splitlines()
    if ansi:
        lines = [f"{_ANSI_ON}{line}{_ANSI_OFF}" for line in lines]
    return "\n".join(lines) + "\n"


def verify_totp(secret: str, code: str, now: float, last_used_step: int | None) -> int | None:
    """The time step ``code`` is valid for at ``now`` (Unix seconds), or None.

    Accepts the current step and one either side, but only steps after
    ``last_used_step``: store the returned step and pass it next time, so no code is
    accepted twice. ``code`` must be exactly six ASCII digits (surrounding and inner
    spaces are ignored). Raises IntegrityError if ``secret`` is not valid base32."""
    candidate = code.replace(" ", "").strip()
    if not _CODE.fullmatch(candidate):
        return None
    current = int(now) // TOTP_STEP_SECONDS
    steps = range(current - _VALID_WINDOW, current + _VALID_WINDOW + 1)
    try:
        totp = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_STEP_SECONDS)
        expected_codes = [(step, totp.generate_otp(step)) for step in steps]
    except (binascii.Error, ValueError) as exc:
        raise IntegrityError("stored TOTP secret is malformed") from exc
    matched: int | None = None
    # Every candidate is compared, no early exit, each in constant time.
    for step, expected in expected_codes:
        fresh = last_used_step is None or step > last_used_step
        if hmac.compare_digest(expected, candidate) and fresh:
            matched = step
    return matched


# -- recovery codes ----------------------------------------------------------------------


def new_recovery_codes(n: int = 10) -> list[str]:
    """``n`` distinct random codes like ``7k3q-x0fd-m9ra`` (60 bits each). Show them once;
    store only ``hash_recovery_code`` of each. Raises InvalidInput unless 1 <= n <= 100."""
    if not 1 <= n <= 100:
        raise InvalidInput("number of recovery codes must be 1..100")
    codes: list[str] = []
    while len(codes) < n:
        raw = "".join(secrets.choice(RECOVERY_CODE_ALPHABET) for _ in range(_RECOVERY_CODE_CHARS))
        code = "-".join(
            raw[i : i + _RECOVERY_GROUP] for i in range(0, _RECOVERY_CODE_CHARS, _RECOVERY_GROUP)
        )
        if code not in codes:  # a collision at 60 bits is all but impossible; still, be sure
            codes.append(code)
    return codes


def normalise_recovery_code(code: str) -> str | None:
    """The canonical 12 characters of ``code`` (lower case, no dashes or spaces, o/i/l
    read as 0/1/1), or None if it cannot be a recovery code."""
    cleaned = "".join(code.split()).replace("-", "").lower().translate(_LOOKALIKES)
    if len(cleaned) != _RECOVERY_CODE_CHARS or any(
        c not in RECOVERY_CODE_ALPHABET for c in cleaned
    ):
        return None
    return cleaned


def hash_recovery_code(code: str, key: bytes) -> bytes:
    """HMAC-SHA256 of the normalised code under ``key``: what the database stores.

    Raises InvalidInput for a string that is not a recovery code or a key shorter than
    16 bytes."""
    if len(key) < _MIN_KEY_BYTES:
        raise InvalidInput("recovery code key is too short")
    canonical = normalise_recovery_code(code)
    if canonical is None:
        raise InvalidInput("not a recovery code")
    return hmac.new(key, _RECOVERY_HMAC_PREFIX + canonical.encode(), hashlib.sha256).digest()


def verify_recovery_code(code: str, hashes: Sequence[bytes | None], key: bytes) -> int | None:
    """The index in ``hashes`` of the unused code matching ``code``, or None.

    A used code is ``None`` in ``hashes`` (or left out): the caller marks the returned
    index used before accepting the login, so each code works once. Compares against
    every entry in constant time. Raises InvalidInput only for a short key."""
    if len(key) < _MIN_KEY_BYTES:
        raise InvalidInput("recovery code key is too short")
    if normalise_recovery_code(code) is None:
        return None
    digest = hash_recovery_code(code, key)
    found: int | None = None
    for index, stored in enumerate(hashes):
        if stored is not None and hmac.compare_digest(stored, digest) and found is None:
            found = index
    return found
