"""Secret paths: ``segment/segment/NAME``, each segment of letters, digits, ``_ - .``."""

from __future__ import annotations

import re

from keysafe.errors import InvalidInput

MAX_PATH_LENGTH = 512
_SEGMENT = re.compile(r"[A-Za-z0-9_.\-]+")


# Folders policies use for other resources: administration (sys/key/..., sys/audit) and
# dynamic credentials (creds/<role>). A secret there would share their rules.
RESERVED_FOLDERS = frozenset({"sys", "creds"})
_USES = {"sys": "administration", "creds": "dynamic credentials"}


def validate_path(path: str) -> str:
    """``path`` if valid; raises InvalidInput naming what is wrong."""
    if not path:
        raise InvalidInput("a secret path is required")
    if len(path) > MAX_PATH_LENGTH:
        raise InvalidInput(f"secret path is longer than {MAX_PATH_LENGTH} characters")
    top = path.split("/", 1)[0]
    if top in RESERVED_FOLDERS:
        raise InvalidInput(f"the {top}/ folder is reserved (policies use it for {_USES[top]})")
    for segment in path.split("/"):
        if not segment:
            raise InvalidInput(
                f"secret path {path!r} has an empty segment (leading, trailing or double '/')"
            )
        if segment in (".", ".."):
            raise InvalidInput(f"secret path {path!r} may not contain '.' or '..' segments")
        if not _SEGMENT.fullmatch(segment):
            raise InvalidInput(
                f"secret path segment {segment!r} may only hold letters, digits, '_', '-' and '.'"
            )
    return path


def validate_prefix(prefix: str) -> str:
    """A listing prefix: empty, a folder ending in '/', or a partial path."""
    if prefix == "":
        return prefix
    validate_path(prefix.rstrip("/") or "x")
    return prefix


def folder_prefix(folder: str) -> str:
    """``a/b`` or ``a/b/`` as the listing prefix ``a/b/``."""
    folder = folder.strip("/")
    return "" if not folder else validate_path(folder) + "/"
