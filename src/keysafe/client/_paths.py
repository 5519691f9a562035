"""Client-side checks of secret paths, mirroring the API contract.

Checked before a request so that a path can never be rewritten on the way: an HTTP
library collapses ``a/../b`` to ``b``, and a ``?`` or ``#`` would end the URL path early.
"""

from __future__ import annotations

import re

from keysafe.errors import InvalidInput

MAX_PATH = 512
_SEGMENT = re.compile(r"[A-Za-z0-9_.-]+")


def check_path(path: str) -> str:
    """``path`` itself when it is a well-formed secret path; raises InvalidInput otherwise."""
    if not path or len(path) > MAX_PATH:
        raise InvalidInput(f"malformed secret path {path!r}: must be 1-{MAX_PATH} characters")
    for segment in path.split("/"):
        if not _SEGMENT.fullmatch(segment) or segment in {".", ".."}:
            raise InvalidInput(
                f"malformed secret path {path!r}: segments are [A-Za-z0-9_.-]+ joined by '/'"
            )
    return path


def check_folder(folder: str) -> str:
    """A folder path without trailing slash (``payments/dev``); raises InvalidInput."""
    stripped = folder.strip("/")
    if not stripped:
        raise InvalidInput("a folder path is required (for example payments/dev)")
    return check_path(stripped)
