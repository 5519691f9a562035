"""The local profile ``$KEYSAFE_HOME/profile.toml``: written 0600, atomically.

Reading lives in ``keysafe.client._config`` because the SDK reads it too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from keysafe.client._config import PROFILE_NAME, read_profile

__all__ = ["PROFILE_NAME", "read_profile", "toml_string", "write_profile"]


def toml_string(value: str) -> str:
    """A TOML basic string: JSON's escapes (\\" \\\\ \\n \\uXXXX) are all valid TOML."""
    return json.dumps(value, ensure_ascii=True)


def write_profile(path: Path, values: dict[str, str | None]) -> None:
    """Replace the profile with ``values`` (None entries dropped), mode 0600, dir 0700.

    The file may hold a root token: it is created 0600 before any byte is written and
    renamed into place, so it is never readable by others, even for an instant.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    body = "".join(
        f"{key} = {toml_string(value)}\n" for key, value in values.items() if value is not None
    )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode is ignored when the file already existed
        os.write(fd, body.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
