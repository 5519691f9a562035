"""The ``postgres`` rotator: a PostgreSQL login's password, changed through an admin login.

Options (``keysafe rotation set PATH --rotator postgres --option KEY=VALUE``):

``target-secret`` (required)
    Path of a keysafe secret holding an administrator's connection URL
    (``postgresql://admin:pw@db.internal:5432/app``), read through the vault's own checks
    at every rotation, so that the admin password itself may be rotated.
``role`` (required)
    The login whose password rotates.
``mode``
    ``alternate`` (the default) or ``grace``, see below.
``second-role``
    In ``alternate`` mode, the other login of the pair (default ``<role>_b``).
``host``, ``port``, ``dbname``
    Where applications connect, when that differs from the admin URL (by default the
    admin URL's host, port and database).

**The value** is a complete connection URL,
``postgresql://<user>:<password>@<host>:<port>/<dbname>``: ``psycopg.connect(value)``
works, and ``keysafe run`` can hand it to a program as ``DATABASE_URL``. The user name
travels with the password because in ``alternate`` mode it changes at each rotation.
Passwords are 256 random bits in URL-safe characters (no quoting issue anywhere).

**alternate** (zero downtime): two logins with the same privileges, ``<role>`` and
``<role>_b`` (create the second one yourself, for example
``CREATE ROLE app_b LOGIN IN ROLE app``, so that both act as ``app``). The secret's value
names the active login. Each rotation changes the password of the *inactive* login and
makes it current; the previous credential is not touched, so every client holding it
keeps connecting until ``retire``, which sets the previous login's ``VALID UNTIL`` to the
past once the grace period is over (its open sessions are left alone: PostgreSQL checks
passwords at login only). The next rotation lifts that expiry when it reuses the login.

**grace** (single login): PostgreSQL keeps one password per role, so the old password
stops working for *new* logins at ``apply``; what the grace period protects is the
sessions already open (pools keep their connections, PostgreSQL never re-checks them),
and ``retire`` has nothing left to do. Clients that open new connections must switch to
the new value themselves: ``keysafe.client.Client.using`` refetches the secret when a
login fails and retries once. Choose ``alternate`` unless a second login is impossible.

The password never appears in statement text: ``ALTER ROLE`` receives the SCRAM-SHA-256
verifier computed here, so statement logs cannot reveal it. Identifiers are quoted by
``psycopg.sql.Identifier``. Every failure is a RotationFailed naming the problem (cannot
connect, authentication failed, no such role), never a password or a URL with one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from keysafe.errors import InvalidInput, RotationFailed
from keysafe.rotation.dynamic import scram_verifier
from keysafe.rotation.targets import UNREACHABLE, PgConn, Target, make_target, parse_postgres

from ._common import check_known, check_name, new_password, read_admin_url
from .base import RotationContext

__all__ = ["PostgresRotator"]

log = logging.getLogger("keysafe.rotation")
MODES = ("alternate", "grace")
_REQUIRED = ("target-secret", "role")
_OPTIONAL = ("mode", "second-role", "host", "port", "dbname")
# Under the claim renewal period (CLAIM_SECONDS / 3 = 5 s): a silent target cannot
# hold a step past one renewal on connecting alone.
_CONNECT_TIMEOUT = 3


@dataclass(frozen=True, slots=True)
class _Options:
    role: str
    mode: str
    second: str

    @property
    def logins(self) -> tuple[str, ...]:
        return (self.role, self.second) if self.mode == "alternate" else (self.role,)


@dataclass(frozen=True, slots=True)
class _Credential:
    user: str
    password: str

    def __repr__(self) -> str:
        return f"_Credential(user={self.user!r}, password='***')"


class PostgresRotator:
    """Rotates a PostgreSQL login's password (see the module docstring for the design)."""

    name = "postgres"

    def check_options(self, options: Mapping[str, str]) -> None:
        """InvalidInput for an unknown or missing option, a bad mode, role or port."""
        _parse(options)

    def targets(self, ctx: RotationContext) -> list[tuple[Target, str]]:
        """Where the steps connect: the admin URL's server (to alter each login) and
        the applications' address (to log in as each login)."""
        opts = _parse(ctx.options)
        admin = _admin_conn(read_admin_url(ctx))
        app = _app_conn(admin, ctx.options, opts.role)
        return [(t, login) for login in opts.logins for t in (admin.target, app.target)]

    def generate(self, ctx: RotationContext) -> str:
        """The next credential as a URL: the inactive login (alternate) or the role
        itself (grace) with a fresh password. Reads the admin secret for the address;
        RotationFailed when that address or the applications' one is not approved."""
        opts = _parse(ctx.options)
        active = _credential(ctx.current)
        user = opts.role
        if opts.mode == "alternate" and active is not None and active.user == opts.role:
            user = opts.second
        admin = _admin_conn(read_admin_url(ctx))
        ctx.approve(admin.target, user)
        app = _app_conn(admin, ctx.options, user)
        ctx.approve(app.target, user)
        return _app_url(app, admin.sslmode, user, new_password())

    def apply(self, ctx: RotationContext, new: str) -> None:
        """Set the login's password to ``new``'s and lift any expiry (idempotent).

        Also the protocol's rollback (``apply(ctx, current)``): an earlier value works
        again. A value set by hand before rotation began was never changed here, so
        rolling back to it changes nothing."""
        opts = _parse(ctx.options)
        if ctx.extra.get("step") == "rollback" and _credential(new) is None:
            return
        cred = _own_credential(opts, new)
        target = _Admin(read_admin_url(ctx), ctx)
        target.alter(
            cred.user,
            sql.SQL("PASSWORD {} VALID UNTIL 'infinity'").format(
                sql.Literal(scram_verifier(cred.password))
            ),
        )

    def verify(self, ctx: RotationContext, new: str) -> None:
        """Log in with ``new`` on a fresh connection; RotationFailed if that fails or
        its address is not approved."""
        opts = _parse(ctx.options)
        cred = _own_credential(opts, new)
        try:
            conn_parts = parse_postgres(new)
        except InvalidInput as exc:
            raise RotationFailed(f"the candidate value is unusable: {exc.detail}") from None
        ctx.approve(conn_parts.target, cred.user)
        where = f"PostgreSQL at {conn_parts.target.address()}"
        try:
            with psycopg.connect(conn_parts.conninfo(), connect_timeout=_CONNECT_TIMEOUT) as conn:
                row = conn.execute("SELECT current_user::text").fetchone()
        except psycopg.Error as exc:
            reason = _connect_reason(exc, where, cred.password)
            raise RotationFailed(
                f"login as {cred.user} with the new password failed: {reason}"
            ) from None
        if row is None or row[0] != cred.user:
            raise RotationFailed(f"login with the new password did not act as {cred.user}")

    def retire(self, ctx: RotationContext, old: str) -> None:
        """alternate: expire the previous login, unless it is the current one again.
        grace: nothing (the old password stopped at ``apply``). Idempotent."""
        opts = _parse(ctx.options)
        if opts.mode != "alternate":
            return
        previous = _credential(old)
        if previous is None or previous.user not in opts.logins:
            return  # a value set by hand before rotation began: nothing of ours to retire
        current = _credential(ctx.current)
        if current is not None and current.user == previous.user:
            # A late retire after the login came round again: its new password is live.
            return
        target = _Admin(read_admin_url(ctx), ctx)
        target.alter(previous.user, sql.SQL("VALID UNTIL {}").format(sql.Literal("-infinity")))


def _parse(options: Mapping[str, str]) -> _Options:
    check_known("postgres", options, required=_REQUIRED, optional=_OPTIONAL)
    role = options["role"].strip()
    check_name("postgres", "role", role)
    mode = options.get("mode", "alternate").strip() or "alternate"
    if mode not in MODES:
        raise InvalidInput(f"postgres option 'mode' must be one of {', '.join(MODES)}")
    second = options.get("second-role", "").strip()
    if second and mode != "alternate":
        raise InvalidInput("postgres option 'second-role' only applies to mode=alternate")
    second = second or f"{role}_b"
    check_name("postgres", "second-role", second)
    if mode == "alternate" and second == role:
        raise InvalidInput("postgres options 'role' and 'second-role' must differ")
    port = options.get("port", "").strip()
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise InvalidInput("postgres option 'port' must be a TCP port number")
    return _Options(role=role, mode=mode, second=second)


def _credential(value: str | None) -> _Credential | None:
    """The user and password of a connection URL; None when ``value`` is not one."""
    if not value or not value.startswith(("postgresql://", "postgres://")):
        return None
    try:
        info = conninfo_to_dict(value)
    except psycopg.Error:
        return None  # the parser's message quotes the value: never let it out
    user, password = info.get("user"), info.get("password")
    if not user or not password:
        return None
    return _Credential(str(user), str(password))


def _own_credential(opts: _Options, value: str) -> _Credential:
    cred = _credential(value)
    if cred is None:
        raise RotationFailed("the candidate value is not a postgresql:// URL with a password")
    if cred.user not in opts.logins:
        raise RotationFailed(f"the candidate's login {cred.user} is not one this policy rotates")
    return cred


def _admin_conn(url: str) -> PgConn:
    try:
        return parse_postgres(url)
    except InvalidInput as exc:
        raise RotationFailed(f"the admin secret is unusable: {exc.detail}") from None


def _app_conn(admin: PgConn, options: Mapping[str, str], user: str) -> PgConn:
    """Where applications connect: the admin URL's address unless the options say."""
    try:
        target = make_target(
            "postgres",
            options.get("host") or admin.target.host,
            int(options.get("port") or admin.target.port),
            options.get("dbname") or admin.target.database,
        )
    except InvalidInput as exc:
        raise RotationFailed(f"the applications' address is unusable: {exc.detail}") from None
    return PgConn(target, user, "", admin.sslmode)


def _app_url(app: PgConn, sslmode: str, user: str, pw: str) -> str:
    """``postgresql://user:pw@host:port/dbname`` for applications."""
    host = app.target.host
    netloc_host = f"[{host}]" if ":" in host else host
    url = f"postgresql://{quote(user, safe='')}:{quote(pw, safe='')}@{netloc_host}"
    url += f":{app.target.port}/{quote(app.target.database, safe='')}"
    return url + (f"?{urlencode({'sslmode': sslmode})}" if sslmode else "")


def _connect_reason(exc: psycopg.Error, where: str, *secrets: str) -> str:
    """What the caller may learn of a failed connection: the server's own refusal
    (wrong password, no such database) when a PostgreSQL server answered, else one
    generic reason, so that closed, silent and foreign ports look alike. The driver's
    text goes to the server log only."""
    text = str(exc)
    if "FATAL:" in text:  # an ErrorResponse: only a PostgreSQL server sends one
        refusal = text.rsplit("FATAL:", 1)[1].strip().splitlines()[0]
        for secret in secrets:
            if secret:
                refusal = refusal.replace(secret, "***")
        return f"{where}: {refusal}"
    log.warning("connection to %s failed: %s", where, _reason(exc, *secrets))
    return f"{where}: {UNREACHABLE}"


def _reason(exc: psycopg.Error, *secrets: str) -> str:
    """The server's one-line reason for ``exc``, with any of ``secrets`` masked."""
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    text = primary or (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


class _Admin:
    """The administrator's login on the target, one short connection per call."""

    def __init__(self, url: str, ctx: RotationContext) -> None:
        self._conn = _admin_conn(url)
        self._approve = ctx.approve
        self.where = f"PostgreSQL at {self._conn.target.address()} as {self._conn.user}"

    @contextmanager
    def _connect(self, role: str) -> Iterator[psycopg.Connection[Any]]:
        self._approve(self._conn.target, role)
        try:
            conn = psycopg.connect(
                self._conn.conninfo(), connect_timeout=_CONNECT_TIMEOUT, autocommit=True
            )
        except psycopg.Error as exc:
            reason = _connect_reason(exc, self.where, self._conn.password)
            raise RotationFailed(f"cannot connect to {reason}") from None
        try:
            conn.execute("SET statement_timeout = '30s'")  # a hung target must not hang us
            yield conn
        finally:
            conn.close()

    def alter(self, role: str, clause: sql.Composable) -> None:
        """``ALTER ROLE role <clause>``; RotationFailed naming a missing role or refusal."""
        with self._connect(role) as conn:
            try:
                exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
                if exists.fetchone() is None:
                    raise RotationFailed(
                        f"role {role} does not exist on {self.where}: create it first "
                        "(for a pair, CREATE ROLE <role>_b LOGIN IN ROLE <role>)"
                    )
                conn.execute(sql.SQL("ALTER ROLE {} ").format(sql.Identifier(role)) + clause)
            except psycopg.Error as exc:
                reason = _reason(exc, self._conn.password)
                raise RotationFailed(
                    f"could not alter role {role} on {self.where}: {reason}"
                ) from None
