"""Where the SDK and the CLI find the server: explicit values, then env, then the profile.

The profile is ``$KEYSAFE_HOME/profile.toml`` (``addr``, ``token``, ``cacert``), written by
``keysafe up``. Stdlib only: this runs on every CLI call and must stay cheap (no pydantic).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from keysafe.errors import ConnectionFailed, InvalidInput

PROFILE_NAME = "profile.toml"


@dataclass(frozen=True, slots=True)
class Connection:
    """A resolved server address, credential and CA bundle."""

    addr: str | None
    token: str | None = None
    cacert: Path | None = None

    def __repr__(self) -> str:
        # Never let a token reach a log line or a traceback through repr().
        token = "***" if self.token else None
        return f"Connection(addr={self.addr!r}, token={token!r}, cacert={self.cacert!r})"


def home_dir(home: str | Path | None = None) -> Path:
    """``home``, else ``$KEYSAFE_HOME``, else ``~/.keysafe``."""
    if home is not None:
        return Path(home).expanduser()
    env = os.environ.get("KEYSAFE_HOME")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".keysafe"


def profile_path(home: str | Path | None = None) -> Path:
    return home_dir(home) / PROFILE_NAME


def read_profile(path: Path) -> dict[str, str]:
    """The string entries of a profile file; empty when there is none.

    Raises InvalidInput when the file exists but is not valid TOML.
    """
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"profile {path} is not valid TOML: {exc}") from exc
    return {k: v for k, v in raw.items() if isinstance(v, str)}


def resolve(
    addr: str | None = None,
    token: str | None = None,
    cacert: str | Path | None = None,
    *,
    home: str | Path | None = None,
) -> Connection:
    """Fill each missing value from ``KEYSAFE_*`` env, then the profile.

    The profile's token and CA are used only for the profile's own address: a token saved
    for the local vault must never be sent to another server named by ``KEYSAFE_ADDR``.
    ``addr`` may list several comma-separated addresses (nodes of one cluster); the
    profile's token and CA then apply when every one of them is in the profile's list.
    """
    addr = addr or os.environ.get("KEYSAFE_ADDR") or None
    token = token or os.environ.get("KEYSAFE_TOKEN") or None
    cacert = cacert or os.environ.get("KEYSAFE_CACERT") or None
    if addr is None or token is None or cacert is None:
        profile = read_profile(profile_path(home))
        profile_addr = profile.get("addr") or None
        addr = addr or profile_addr
        if addr is not None and profile_addr is not None and _same(addr, profile_addr):
            token = token or profile.get("token") or None
            cacert = cacert or profile.get("cacert") or None
    return Connection(
        addr=addr.rstrip("/") if addr else None,
        token=token,
        cacert=Path(cacert).expanduser() if cacert else None,
    )


def _same(a: str, b: str) -> bool:
    # Every address of ``a`` is one of ``b``'s (a single address is a list of one).
    mine = _addr_set(a)
    return bool(mine) and mine <= _addr_set(b)


def same_server(a: str, b: str) -> bool:
    """True when every address in ``a`` is one of ``b``'s, ``localhost`` and
    ``127.0.0.1`` (and ``[::1]``) counting as one host: the same ``keysafe up``."""
    return _same(a, b)


# Loopback spellings of one host (RFC 6761: localhost is always the loopback host).
_LOOPBACK = {"localhost": "127.0.0.1", "[::1]": "127.0.0.1"}


def _addr_set(addrs: str) -> set[str]:
    return {_key(p) for p in addrs.split(",") if p.strip()}


def _key(addr: str) -> str:
    from urllib.parse import urlsplit

    addr = addr.strip().rstrip("/").lower()
    url = urlsplit(addr if "://" in addr else "https://" + addr)
    host, sep, port = url.netloc.rpartition(":")
    if not sep or not port.isdigit():
        host, port = url.netloc, ""
    host = _LOOPBACK.get(host, host)
    port = port or ("443" if url.scheme == "https" else "80")
    return f"{url.scheme}://{host}:{port}{url.path}"


def normalise_addr(addr: str) -> str:
    """``addr`` with a scheme (https by default) and no trailing slash."""
    if "://" not in addr:
        addr = "https://" + addr
    scheme = addr.split("://", 1)[0].lower()
    if scheme not in {"http", "https"}:
        raise ConnectionFailed(f"unsupported server address {addr!r}: use https:// or http://")
    return addr.rstrip("/")
