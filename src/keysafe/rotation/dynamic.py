"""Temporary PostgreSQL logins: create, extend and drop roles on a target database.

keysafe itself writes ``CREATE ROLE ... LOGIN PASSWORD ... VALID UNTIL ...``; a role's
template adds only grant statements, in which ``{{name}}`` becomes the generated login as
a quoted identifier (``psycopg.sql.Identifier``) and ``{{expiration}}`` the expiry as a
quoted literal. The password never appears in any statement text: keysafe sends a
SCRAM-SHA-256 verifier computed here, so server logs (``log_statement = all``) and error
messages cannot reveal it.

Every failure of the target becomes ``RotationFailed`` with a message a person
understands and without the connection URL's password.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import logging
import os
import re
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from keysafe.errors import InvalidInput, RotationFailed
from keysafe.rotation.targets import UNREACHABLE

__all__ = [
    "MAX_IDENTIFIER_BYTES",
    "PostgresTarget",
    "Target",
    "check_grants",
    "new_password",
    "render_grant",
    "scram_verifier",
    "username_for",
]

log = logging.getLogger("keysafe.rotation")

# PostgreSQL truncates identifiers past 63 bytes (NAMEDATALEN - 1): never rely on that.
MAX_IDENTIFIER_BYTES = 63
_RANDOM_CHARS = 10  # base32: 50 random bits, enough to never collide among live logins
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_]+)\s*\}\}")
_KNOWN_PLACEHOLDERS = frozenset({"name", "expiration"})
MAX_GRANTS = 32
MAX_GRANT_CHARS = 4096


class Target(Protocol):
    """A database on which keysafe manages temporary logins."""

    def create(
        self, username: str, password: str, valid_until: dt.datetime, grants: Sequence[str]
    ) -> None:
        """Create the login and run ``grants`` in one transaction (all or nothing)."""
        ...

    def extend(self, username: str, valid_until: dt.datetime) -> None:
        """Move the login's ``VALID UNTIL``; RotationFailed if it no longer exists."""
        ...

    def drop(self, usernames: Sequence[str]) -> dict[str, str]:
        """Drop these logins (idempotent); the reason for each one that could not be."""
        ...


def username_for(role: str, random_part: str | None = None) -> str:
    """``ks_<role-slug>_<random>``: lowercase ASCII, at most 63 bytes, never truncated
    by PostgreSQL. The slug keeps the role recognisable in ``pg_stat_activity``."""
    rand = random_part or base64.b32encode(os.urandom(8)).decode().lower()[:_RANDOM_CHARS]
    slug = re.sub(r"[^a-z0-9]+", "_", role.lower()).strip("_") or "role"
    room = MAX_IDENTIFIER_BYTES - len("ks__") - len(rand)
    slug = slug[:room].rstrip("_") or "role"
    return f"ks_{slug}_{rand}"


def new_password() -> str:
    """A fresh random password: 256 bits, URL-safe (no quoting issue in any DSN)."""
    return secrets.token_urlsafe(32)


def scram_verifier(password: str, *, salt: bytes | None = None, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for ``password`` (RFC 5802/7677).

    PostgreSQL accepts a verifier in place of a password in ``CREATE ROLE ... PASSWORD``,
    so the password itself never reaches the server's statement logs. The password is
    ASCII (see ``new_password``), for which SASLprep is the identity.
    """
    salt = salt if salt is not None else os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def check_grants(statements: Sequence[str]) -> list[str]:
    """The grant statements, stripped; InvalidInput for an unknown placeholder, for
    ``{{password}}`` (the password never enters statement text) or for a size past
    the limits."""
    if len(statements) > MAX_GRANTS:
        raise InvalidInput(f"at most {MAX_GRANTS} grant statements")
    cleaned: list[str] = []
    for statement in statements:
        text = statement.strip()
        if not text:
            raise InvalidInput("a grant statement is empty")
        if len(text) > MAX_GRANT_CHARS:
            raise InvalidInput(f"a grant statement is longer than {MAX_GRANT_CHARS} characters")
        for found in _PLACEHOLDER.findall(text):
            if found == "password":
                raise InvalidInput(
                    "{{password}} is not allowed in grants: keysafe sets the password in "
                    "CREATE ROLE itself, so that no statement ever carries it"
                )
            if found not in _KNOWN_PLACEHOLDERS:
                raise InvalidInput(
                    f"unknown placeholder {{{{{found}}}}} in a grant: use {{{{name}}}} "
                    "(the generated login) or {{expiration}}"
                )
        cleaned.append(text)
    return cleaned


def render_grant(statement: str, username: str, valid_until: dt.datetime) -> sql.Composed:
    """``statement`` with ``{{name}}`` as a quoted identifier and ``{{expiration}}`` as a
    quoted timestamp literal; the rest is the administrator's SQL, verbatim."""
    parts: list[sql.Composable] = []
    pos = 0
    for match in _PLACEHOLDER.finditer(statement):
        parts.append(sql.SQL(statement[pos : match.start()]))
        if match.group(1) == "name":
            parts.append(sql.Identifier(username))
        else:
            parts.append(sql.Literal(valid_until.isoformat()))
        pos = match.end()
    parts.append(sql.SQL(statement[pos:]))
    return sql.Composed(parts)


class PostgresTarget:
    """One PostgreSQL database reached with an administrator's connection URL.

    Each call opens its own short connection (no pool: calls are rare and the URL may
    change when the admin secret is rotated).
    """

    def __init__(self, url: str, *, connect_timeout: int = 5) -> None:
        if url.startswith("postgresql+psycopg://"):
            url = "postgresql://" + url[len("postgresql+psycopg://") :]
        try:
            info = conninfo_to_dict(url)
        except psycopg.Error:
            # The parser's message quotes the string, which may hold a password.
            raise RotationFailed(
                "the connection secret is not a PostgreSQL URL (postgresql://user:pw@host/db)"
            ) from None
        self._url = url
        self._password = str(info.get("password") or "")
        self._where = (
            f"PostgreSQL at {info.get('host') or 'localhost'}:{info.get('port') or 5432}"
            f"/{info.get('dbname') or ''} as {info.get('user') or 'the default user'}"
        )
        self._timeout = connect_timeout

    def _reason(self, exc: psycopg.Error) -> str:
        diag = getattr(exc, "diag", None)
        primary = getattr(diag, "message_primary", None) if diag is not None else None
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        text = primary or (lines[0] if lines else type(exc).__name__)
        text = text.removeprefix("connection failed: ")
        if self._password:
            text = text.replace(self._password, "***")
        return text

    def _refusal(self, exc: psycopg.Error) -> str:
        """The server's own refusal (an ErrorResponse: only PostgreSQL sends one), else
        one generic reason so that closed, silent and foreign ports look alike; the
        driver's text goes to the server log only."""
        text = str(exc)
        if "FATAL:" in text:
            refusal = text.rsplit("FATAL:", 1)[1].strip().splitlines()[0]
            return refusal.replace(self._password, "***") if self._password else refusal
        log.warning("connection to %s failed: %s", self._where, self._reason(exc))
        return UNREACHABLE

    @contextmanager
    def _connect(self) -> Iterator[psycopg.Connection[Any]]:
        try:
            conn = psycopg.connect(self._url, connect_timeout=self._timeout, autocommit=True)
        except psycopg.Error as exc:
            raise RotationFailed(f"cannot connect to {self._where}: {self._refusal(exc)}") from None
        try:
            # A hung target must not hold a server thread for ever.
            conn.execute("SET statement_timeout = '30s'")
            yield conn
        finally:
            conn.close()

    def create(
        self, username: str, password: str, valid_until: dt.datetime, grants: Sequence[str]
    ) -> None:
        verifier = scram_verifier(password)
        with self._connect() as conn:
            try:
                with conn.transaction():
                    conn.execute(
                        sql.SQL("CREATE ROLE {} WITH LOGIN PASSWORD {} VALID UNTIL {}").format(
                            sql.Identifier(username),
                            sql.Literal(verifier),
                            sql.Literal(valid_until.isoformat()),
                        )
                    )
                    for number, grant in enumerate(grants, 1):
                        try:
                            conn.execute(render_grant(grant, username, valid_until))
                        except psycopg.Error as exc:
                            raise RotationFailed(
                                f"grant statement {number} failed on {self._where}: "
                                f"{self._reason(exc)} (nothing was created)"
                            ) from None
            except psycopg.Error as exc:
                raise RotationFailed(
                    f"could not create the login on {self._where}: {self._reason(exc)}"
                ) from None

    def extend(self, username: str, valid_until: dt.datetime) -> None:
        with self._connect() as conn:
            try:
                exists = conn.execute(
                    "SELECT 1 FROM pg_roles WHERE rolname = %s", (username,)
                ).fetchone()
                if exists is None:
                    raise RotationFailed(f"the login {username} no longer exists on {self._where}")
                conn.execute(
                    sql.SQL("ALTER ROLE {} VALID UNTIL {}").format(
                        sql.Identifier(username), sql.Literal(valid_until.isoformat())
                    )
                )
            except psycopg.Error as exc:
                raise RotationFailed(
                    f"could not extend the login on {self._where}: {self._reason(exc)}"
                ) from None

    def drop(self, usernames: Sequence[str]) -> dict[str, str]:
        """Terminate the logins' sessions, hand what they own to the administrator
        (REASSIGN OWNED), drop their privileges (DROP OWNED) and the roles, in one
        transaction per batch; a batch that fails is retried one login at a time so a
        single bad login cannot keep the others alive. Objects and grants in *other*
        databases of the cluster are not reached (DROP ROLE then fails and says so).
        RotationFailed when the target cannot be reached at all."""
        failures: dict[str, str] = {}
        with self._connect() as conn:
            try:
                self._drop_batch(conn, list(usernames))
                return failures
            except psycopg.Error as exc:
                if len(usernames) == 1:
                    failures[usernames[0]] = self._drop_failure(usernames[0], exc)
                    return failures
            for name in usernames:
                try:
                    self._drop_batch(conn, [name])
                except psycopg.Error as exc:
                    failures[name] = self._drop_failure(name, exc)
        return failures

    def _drop_failure(self, name: str, exc: psycopg.Error) -> str:
        return f"could not drop {name} on {self._where}: {self._reason(exc)}"

    def _drop_batch(self, conn: psycopg.Connection[Any], names: list[str]) -> None:
        rows = conn.execute(
            "SELECT oid::bigint, rolname::text FROM pg_roles WHERE rolname = ANY(%s)", (names,)
        ).fetchall()
        if not rows:
            return  # already gone: dropping is idempotent
        oids = [int(r[0]) for r in rows]
        present = [str(r[1]) for r in rows]
        terminate = (
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE usesysid = ANY(%s::oid[]) AND pid <> pg_backend_pid()"
        )
        # Sessions go first: an open transaction of the login would hold locks that
        # DROP OWNED waits for.
        conn.execute(terminate, (oids,))
        idents = sql.SQL(", ").join(sql.Identifier(n) for n in present)
        with conn.transaction():
            # A session that slipped in meanwhile must not stall the sweep: fail, retry.
            conn.execute("SET LOCAL lock_timeout = '5s'")
            conn.execute(sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(idents))
            conn.execute(sql.SQL("DROP OWNED BY {}").format(idents))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(idents))
        # Nobody can log in as them any more; end any session that raced the drop.
        conn.execute(terminate, (oids,))
