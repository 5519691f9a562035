"""Small helpers the credential rotators share: option checks, the admin secret, passwords.

Kept apart from ``base.py`` (the contract) so that a rotator module stays readable on its
own: it imports these three functions and nothing else from its siblings.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Mapping

from keysafe.errors import InvalidInput, KeysafeError, RotationFailed

from .base import RotationContext

# PostgreSQL truncates identifiers past 63 bytes; Redis has no limit, but a user name
# longer than this is a typo, not a plan.
MAX_NAME_BYTES = 63


def check_known(
    rotator: str,
    options: Mapping[str, str],
    *,
    required: Collection[str],
    optional: Collection[str],
) -> None:
    """InvalidInput naming the first unknown or missing option (sorted, so stable)."""
    allowed = set(required) | set(optional)
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise InvalidInput(
            f"the {rotator} rotator has no option {unknown[0]!r}: use {', '.join(sorted(allowed))}"
        )
    for key in sorted(required):
        if not options.get(key, "").strip():
            raise InvalidInput(f"the {rotator} rotator needs the option {key!r}")


def check_name(rotator: str, key: str, name: str) -> None:
    """InvalidInput unless ``name`` is a usable login name (non-empty, printable, short)."""
    if not name or len(name.encode()) > MAX_NAME_BYTES:
        raise InvalidInput(
            f"{rotator} option {key!r} must be 1-{MAX_NAME_BYTES} bytes, got {len(name)} characters"
        )
    if not name.isprintable() or any(c.isspace() for c in name):
        raise InvalidInput(
            f"{rotator} option {key!r} must not contain spaces or control characters"
        )


def read_admin_url(ctx: RotationContext, key: str = "target-secret") -> str:
    """The administrator's connection URL kept in the secret named by option ``key``.

    Raises RotationFailed naming the secret (never its value) when it cannot be read.
    """
    path = ctx.options.get(key, "")
    if not path:
        raise RotationFailed(f"no {key!r} option: the rotator needs an admin connection secret")
    try:
        url = ctx.read_secret(path)
    except KeysafeError as exc:
        raise RotationFailed(f"cannot read the admin secret {path}: {exc.detail}") from None
    url = url.strip()
    if not url:
        raise RotationFailed(f"the admin secret {path} is empty")
    return url


def new_password() -> str:
    """A fresh random password: 256 bits, URL-safe, so it needs no quoting in any URL."""
    return secrets.token_urlsafe(32)
