"""The one-time init token of a production server (``keysafe server --init-token-file``).

Without it, whoever reaches a new server first initialises it and holds its root token
and shares. With ``init_token_file`` set, ``POST /api/v1/sys/init`` must present the
file's content (header ``X-Keysafe-Init-Token`` or body field ``init_token``), compared
in constant time; a successful init deletes the file, so the token works once. The
server creates the file (0600, a random token) when it is missing and the vault is not
initialised; one it did not create must be private to its owner and hold at least 16
characters. Anything unreadable refuses init (fail closed).
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
from pathlib import Path

from keysafe.errors import InvalidInput, Unauthenticated, Unavailable

__all__ = [
    "INIT_TOKEN_HEADER",
    "MIN_INIT_TOKEN_LENGTH",
    "check_init_token",
    "consume_init_token",
    "prepare_init_token",
    "read_init_token",
]

log = logging.getLogger("keysafe.system")

INIT_TOKEN_HEADER = "X-Keysafe-Init-Token"  # noqa: S105 - a header name
MIN_INIT_TOKEN_LENGTH = 16
_PREFIX = "ksi1_"  # says what the file holds when someone finds it


def prepare_init_token(path: Path) -> bool:
    """Make sure ``path`` holds a usable init token: write a fresh one (0600) when the
    file is missing; True when it did. Raises InvalidInput for a file others may read,
    an unreadable one, or a token shorter than ``MIN_INIT_TOKEN_LENGTH``."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        read_init_token(path, strict=True)
        return False
    except OSError as exc:
        raise InvalidInput(f"cannot create the init token file {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "w") as fh:
        fh.write(_PREFIX + secrets.token_urlsafe(32) + "\n")
    return True


def read_init_token(path: Path, *, strict: bool = False) -> str:
    """The token in ``path``. Raises InvalidInput (``strict``: at start-up) or
    Unavailable (at request time) when it cannot be used."""
    error = InvalidInput if strict else Unavailable
    try:
        mode = path.stat().st_mode
        text = path.read_text().strip()
    except OSError as exc:
        log.warning("init token file %s unreadable: %s", path, exc.strerror)
        raise error(f"the init token file cannot be read ({exc.strerror}); init refused") from exc
    if mode & 0o077:
        raise error(f"the init token file {path} must be private to its owner (chmod 600)")
    if len(text) < MIN_INIT_TOKEN_LENGTH:
        raise error(f"the init token must be at least {MIN_INIT_TOKEN_LENGTH} characters long")
    return text


def check_init_token(path: Path, presented: str | None) -> None:
    """Raise Unauthenticated unless ``presented`` is the token in ``path`` (constant
    time), Unavailable when the file cannot be used."""
    expected = read_init_token(path)
    given = (presented or "").strip()
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise Unauthenticated(
            "initialising this server needs its one-time init token "
            f"({INIT_TOKEN_HEADER} header or init_token field)"
        )


def consume_init_token(path: Path) -> None:
    """Delete the token after a successful init (a failure is logged: the vault is
    initialised either way, so the token can no longer initialise anything)."""
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("could not delete the used init token file %s: %s", path, exc.strerror)
