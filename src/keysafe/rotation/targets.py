"""Network targets of rotators: where a connection URL really leads, parsed strictly.

"Reaching the network is an admin decision" (DESIGN.md): a rotator connects only to a
``(kind, host, port, database)`` an admin approved (``target_store.py``). For that check
to mean anything, the address compared must be the address connected to, so this module
parses a URL into a ``Target`` plus credentials, and the rotators connect with exactly
those parts, never with the URL string:

- hosts are normalised (lower case, no trailing dot, IPv6 brackets dropped, IPv4 in
  any ``inet_aton`` spelling and IPv4-mapped IPv6 written as dotted quads); zone ids,
  several hosts, Unix sockets and characters outside host names are refused;
- libpq URLs may carry only ``user``, ``password``, ``host``, ``port``, ``dbname``,
  ``sslmode`` and ``options`` (server settings), the last two alone in the query:
  ``hostaddr``, ``host=`` in the query, ``service``, ``passfile``, ``sslrootcert``...
  would redirect the connection or read files on the server;
- Redis URLs take no query at all, and the database is a number.

Errors never quote the URL (it holds a password).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from keysafe.errors import InvalidInput

__all__ = [
    "KINDS",
    "UNREACHABLE",
    "PgConn",
    "RedisConn",
    "Target",
    "make_target",
    "normalize_host",
    "parse_postgres",
    "parse_redis",
]

# Persisted in rotation_targets.kind: only ever add.
KINDS = ("postgres", "redis")
DEFAULT_PORTS = {"postgres": 5432, "redis": 6379}
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# ``options`` sets the session's server settings (a search_path, say): it changes
# nothing on this side of the connection.
_PG_ALLOWED = frozenset({"user", "password", "host", "port", "dbname", "sslmode", "options"})
_PG_QUERY = frozenset({"sslmode", "options"})
_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")
_MAX_DATABASE = 63
# The one reason a caller sees for any failure to reach a target (closed, silent, or
# another service): details that would fingerprint a port go to the server log only.
UNREACHABLE = "target refused or unreachable"


@dataclass(frozen=True, slots=True)
class Target:
    """Where a rotator connects: compared field by field with the approved list."""

    kind: str
    host: str
    port: int
    database: str

    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}/{self.database}"

    def describe(self) -> str:
        return f"{self.kind} {self.address()}"


@dataclass(frozen=True, slots=True)
class PgConn:
    """A PostgreSQL connection reduced to the parts that are checked and used."""

    target: Target
    user: str
    password: str
    sslmode: str
    options: str = ""

    def __repr__(self) -> str:
        return f"PgConn({self.target.describe()} as {self.user})"

    def conninfo(self, **extra: Any) -> str:
        """The libpq connection string made of these parts only."""
        from psycopg.conninfo import make_conninfo  # imported when a rotator connects

        params: dict[str, Any] = {
            "host": self.target.host,
            "port": self.target.port,
            "dbname": self.target.database,
            "user": self.user,
            "password": self.password,
        }
        if self.sslmode:
            params["sslmode"] = self.sslmode
        if self.options:
            params["options"] = self.options
        return make_conninfo("", **params, **extra)


@dataclass(frozen=True, slots=True)
class RedisConn:
    """A Redis connection reduced to the parts that are checked and used."""

    target: Target
    scheme: str
    user: str
    password: str

    def __repr__(self) -> str:
        return f"RedisConn({self.target.describe()} as {self.user})"


def normalize_host(raw: str) -> str:
    """The canonical spelling of a network host; InvalidInput for anything else."""
    host = raw.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    host = host.lower().removesuffix(".")
    if not host or len(host) > 253 or "%" in host:  # "%": an IPv6 zone id, or encoding
        raise InvalidInput("a target host must be a host name or an IP address")
    if ":" in host:
        try:
            ip6 = ipaddress.IPv6Address(host)  # refuses zone ids ("%eth0")
        except ValueError:
            raise InvalidInput("a target host is not a valid IPv6 address") from None
        mapped = ip6.ipv4_mapped
        return str(mapped) if mapped is not None else str(ip6)
    if re.fullmatch(r"[0-9a-fx.]+", host):
        try:
            # What getaddrinfo would make of "127.1", "2130706433" or "0x7f.0.0.1".
            return socket.inet_ntoa(socket.inet_aton(host))
        except OSError:
            pass
    if not all(_LABEL.fullmatch(label) for label in host.split(".")):
        raise InvalidInput("a target host must be a host name or an IP address")
    return host


def make_target(kind: str, host: str, port: int | None, database: str) -> Target:
    """A Target from an admin's input; InvalidInput for an unknown kind or bad part."""
    if kind not in KINDS:
        raise InvalidInput(f"target kind must be one of {', '.join(KINDS)}")
    port = DEFAULT_PORTS[kind] if port is None else port
    if not 0 < port < 65536:
        raise InvalidInput("a target port must be between 1 and 65535")
    database = database.strip()
    if kind == "redis":
        database = database or "0"
        if not database.isdigit() or len(database) > 5:
            raise InvalidInput("a redis target's database is a number (0, 1, ...)")
        database = str(int(database))
    elif not database or len(database.encode()) > _MAX_DATABASE or not database.isprintable():
        raise InvalidInput(f"a postgres target needs a database name (1-{_MAX_DATABASE} bytes)")
    return Target(kind, normalize_host(host), port, database)


def parse_postgres(url: str) -> PgConn:
    """A ``postgresql://`` URL reduced to checked parts; InvalidInput (never quoting the
    URL) for another form, an unknown or dangerous parameter, several or local hosts."""
    import psycopg  # imported when a policy names PostgreSQL, not at start-up
    from psycopg.conninfo import conninfo_to_dict

    url = url.strip()
    for prefix in ("postgresql+psycopg://", "postgres://"):
        if url.startswith(prefix):
            url = "postgresql://" + url.removeprefix(prefix)
    if not url.startswith("postgresql://") and "=" not in url:
        raise InvalidInput("the connection is not a PostgreSQL URL (postgresql://user:pw@host/db)")
    try:
        # libpq's own parser (URL or key=value form): what it reads is what is checked.
        info = conninfo_to_dict(url)
    except psycopg.Error:
        raise InvalidInput(
            "the connection is not a PostgreSQL URL (postgresql://user:pw@host/db)"
        ) from None
    if url.startswith("postgresql://"):
        # In the query only TLS: a query ``host=``/``port=`` silently beats the netloc.
        query = {k for k, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True)}
        info_keys = set(info) | {f"?{k}" for k in query - _PG_QUERY}
    else:
        info_keys = set(info)
    unknown = sorted(k.lstrip("?") for k in info_keys - _PG_ALLOWED)
    if unknown:
        raise InvalidInput(
            f"the connection URL's parameter {unknown[0]!r} is not allowed "
            f"(use only {', '.join(sorted(_PG_ALLOWED))})"
        )
    host = str(info.get("host") or "")
    if not host or host.startswith(("/", "@")):
        raise InvalidInput("the connection URL must name a network host (no Unix socket)")
    if "," in host or "," in str(info.get("port") or ""):
        raise InvalidInput("the connection URL must name a single host and port")
    port_text = str(info.get("port") or DEFAULT_PORTS["postgres"])
    if not port_text.isdigit():
        raise InvalidInput("the connection URL's port must be a number")
    user = str(info.get("user") or "")
    if not user:
        raise InvalidInput("the connection URL must name its user")
    sslmode = str(info.get("sslmode") or "")
    if sslmode and sslmode not in SSLMODES:
        raise InvalidInput(f"sslmode must be one of {', '.join(SSLMODES)}")
    target = make_target("postgres", host, int(port_text), str(info.get("dbname") or user))
    options = str(info.get("options") or "")
    return PgConn(target, user, str(info.get("password") or ""), sslmode, options)


def parse_redis(url: str) -> RedisConn:
    """A ``redis://`` or ``rediss://`` URL reduced to checked parts; InvalidInput
    (never quoting the URL) for another scheme, a query, a bad host, port or db."""
    url = url.strip()
    if not url.startswith(("redis://", "rediss://")):
        raise InvalidInput("the connection is not a Redis URL (redis://user:pw@host:6379/0)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidInput("the Redis URL has an invalid host or port") from None
    if parts.query or parts.fragment:
        raise InvalidInput("the Redis URL takes no query parameters")
    host = unquote(parts.hostname or "")
    if not host:
        raise InvalidInput("the Redis URL must name a network host")
    target = make_target("redis", host, port, parts.path.strip("/"))
    return RedisConn(
        target,
        parts.scheme,
        unquote(parts.username or "") or "default",
        unquote(parts.password or ""),
    )
