"""The ``redis`` rotator: the password of a Redis ACL user, with real zero downtime.

Options (``keysafe rotation set PATH --rotator redis --option KEY=VALUE``):

``target-secret`` (required)
    Path of a keysafe secret holding an administrator's URL
    (``redis://admin:pw@cache.internal:6379/0``, or ``rediss://`` for TLS); the admin
    must be allowed ``ACL GETUSER`` and ``ACL SETUSER``.
``user`` (required)
    The ACL user whose password rotates. It must exist: keysafe changes passwords, it
    does not invent permissions (create it with ``ACL SETUSER app on ~app:* +@read ...``).
``host``, ``port``, ``db``
    Where applications connect, when that differs from the admin URL.

**The value** is a URL, ``redis://<user>:<password>@<host>:<port>/<db>``, that
``redis.Redis.from_url(value)`` accepts as it is.

A Redis ACL user may hold several passwords at once, so ``apply`` *adds* the new one
and the previous one keeps working; ``retire`` removes the previous one after the grace
period. Clients holding either value authenticate throughout: no window of failure.
Passwords travel to Redis only as SHA-256 hashes (``#<hash>`` adds, ``!<hash>``
removes), so ``MONITOR``, the slow log or ``ACL LOG`` never see one in clear.
Failures are RotationFailed naming the problem (cannot connect, authentication failed,
not allowed, no such user), never a password.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import quote

import redis as redis_py
from redis.backoff import NoBackoff
from redis.retry import Retry

from keysafe.errors import InvalidInput, RotationFailed
from keysafe.rotation.targets import UNREACHABLE, Target, make_target, parse_redis

from ._common import check_known, check_name, new_password, read_admin_url
from .base import RotationContext

__all__ = ["RedisRotator"]

log = logging.getLogger("keysafe.rotation")
_REQUIRED = ("target-secret", "user")
_OPTIONAL = ("host", "port", "db")
# Under the claim renewal period (5 s): a silent target cannot outlast one renewal.
_TIMEOUT = 3.0


@dataclass(frozen=True, slots=True)
class _Url:
    scheme: str
    user: str
    password: str
    host: str
    port: int
    db: str

    def __repr__(self) -> str:
        return f"_Url({self.scheme}://{self.user}:***@{self.host}:{self.port}/{self.db})"

    @property
    def target(self) -> Target:
        return Target("redis", self.host, self.port, self.db)

    @property
    def where(self) -> str:
        return f"Redis at {self.target.address()}"


class RedisRotator:
    """Rotates a Redis ACL user's password (see the module docstring for the design)."""

    name = "redis"

    def check_options(self, options: Mapping[str, str]) -> None:
        """InvalidInput for an unknown or missing option, a bad user name, port or db."""
        _parse(options)

    def targets(self, ctx: RotationContext) -> list[tuple[Target, str]]:
        """Where the steps connect: the admin URL's server and the applications' one."""
        user = _parse(ctx.options)
        admin = _admin_url(ctx)
        return [(admin.target, user), (_app_target(admin, ctx.options), user)]

    def generate(self, ctx: RotationContext) -> str:
        """A URL for the user with a fresh password; nothing changes on Redis.
        RotationFailed when the admin's or the applications' address is not approved."""
        user = _parse(ctx.options)
        admin = _admin_url(ctx)
        ctx.approve(admin.target, user)
        app = _app_target(admin, ctx.options)
        ctx.approve(app, user)
        netloc_host = f"[{app.host}]" if ":" in app.host else app.host
        return (
            f"{admin.scheme}://{quote(user, safe='')}:{quote(new_password(), safe='')}"
            f"@{netloc_host}:{app.port}/{app.database}"
        )

    def apply(self, ctx: RotationContext, new: str) -> None:
        """Add ``new``'s password to the user, keeping the others (idempotent).

        Also the protocol's rollback (``apply(ctx, current)``): the current password is
        added back if it was lost; a value set by hand (not a URL) is left alone. The
        failed candidate's password, if Redis took it, stays on the user: only the failed
        run ever held it."""
        if ctx.extra.get("step") == "rollback" and _parse_url(new) is None:
            return
        cred = _own(ctx, new)
        admin = _admin_url(ctx)
        with _admin(admin, ctx, cred.user) as conn:
            _require_user(conn, admin, cred.user)
            _acl(conn, admin, "ACL", "SETUSER", cred.user, "#" + _digest(cred.password))

    def verify(self, ctx: RotationContext, new: str) -> None:
        """AUTH as the user with ``new`` on a fresh connection; RotationFailed if refused."""
        cred = _own(ctx, new)
        ctx.approve(cred.target, cred.user)
        # A bare connection: AUTH happens in connect(); no command follows, since the
        # user may be allowed none that would tell us more (not even PING or WHOAMI).
        kind = redis_py.SSLConnection if cred.scheme == "rediss" else redis_py.Connection
        conn = kind(
            host=cred.host,
            port=cred.port,
            username=cred.user,
            password=cred.password,
            socket_timeout=_TIMEOUT,
            socket_connect_timeout=_TIMEOUT,
        )
        try:
            conn.connect()  # type: ignore[no-untyped-call]  # untyped in redis-py
        except redis_py.AuthenticationError as exc:
            reason = _reason(exc, cred.password)
            raise RotationFailed(
                f"AUTH as {cred.user} with the new password failed on {cred.where}: {reason}"
            ) from None
        except redis_py.RedisError as exc:
            reason = _unreachable(exc, cred.where, cred.password)
            raise RotationFailed(
                f"AUTH as {cred.user} with the new password failed: {reason}"
            ) from None
        finally:
            conn.disconnect()  # type: ignore[no-untyped-call]

    def retire(self, ctx: RotationContext, old: str) -> None:
        """Remove ``old``'s password from the user, unless it is the current one
        (idempotent: a password already gone is not an error)."""
        user = _parse(ctx.options)
        previous = _parse_url(old)
        if previous is None or previous.user != user:
            return  # a value set by hand before rotation began: nothing of ours to retire
        current = _parse_url(ctx.current)
        if current is not None and current.password == previous.password:
            return
        admin = _admin_url(ctx)
        digest = _digest(previous.password)
        with _admin(admin, ctx, user) as conn:
            info = _require_user(conn, admin, user, missing_ok=True)
            if digest in [_text(p) for p in info.get("passwords", [])]:
                _acl(conn, admin, "ACL", "SETUSER", user, "!" + digest)


def _parse(options: Mapping[str, str]) -> str:
    """The user option, after checking every option; raises InvalidInput."""
    check_known("redis", options, required=_REQUIRED, optional=_OPTIONAL)
    user = options["user"].strip()
    check_name("redis", "user", user)
    if user == "default":
        raise InvalidInput(
            "the redis rotator does not rotate the 'default' user: clients that send no "
            "user name would all break; create a named ACL user"
        )
    port = options.get("port", "").strip()
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise InvalidInput("redis option 'port' must be a TCP port number")
    db = options.get("db", "").strip()
    if db and not db.isdigit():
        raise InvalidInput("redis option 'db' must be a database number")
    return user


def _parse_url(value: str | None) -> _Url | None:
    """The parts of a ``redis://`` or ``rediss://`` URL, its host normalised; None when
    ``value`` is not one (or carries a query, a bad host, port or db)."""
    if not value or not value.startswith(("redis://", "rediss://")):
        return None
    try:
        conn = parse_redis(value)
    except InvalidInput:
        return None  # the message would not quote the value, but the caller names it
    return _Url(
        scheme=conn.scheme,
        user=conn.user,
        password=conn.password,
        host=conn.target.host,
        port=conn.target.port,
        db=conn.target.database,
    )


def _app_target(admin: _Url, options: Mapping[str, str]) -> Target:
    """Where applications connect: the admin URL's address unless the options say."""
    try:
        return make_target(
            "redis",
            options.get("host") or admin.host,
            int(options.get("port") or admin.port),
            options.get("db") or admin.db,
        )
    except InvalidInput as exc:
        raise RotationFailed(f"the applications' address is unusable: {exc.detail}") from None


def _own(ctx: RotationContext, value: str) -> _Url:
    user = _parse(ctx.options)
    cred = _parse_url(value)
    if cred is None or not cred.password:
        raise RotationFailed("the candidate value is not a redis:// URL with a password")
    if cred.user != user:
        raise RotationFailed(f"the candidate's user {cred.user} is not the one this policy rotates")
    return cred


def _admin_url(ctx: RotationContext) -> _Url:
    url = read_admin_url(ctx)
    try:
        parse_redis(url)
    except InvalidInput as exc:
        raise RotationFailed(f"the admin secret is unusable: {exc.detail}") from None
    admin = _parse_url(url)
    if admin is None:  # pragma: no cover - parse_redis accepted it
        raise RotationFailed("the admin secret is not a Redis URL (redis://user:pw@host:6379/0)")
    return admin


def _connect(url: _Url) -> redis_py.Redis:
    return redis_py.Redis(
        host=url.host,
        port=url.port,
        db=int(url.db) if url.db.isdigit() else 0,
        username=url.user,
        password=url.password or None,
        ssl=url.scheme == "rediss",
        socket_timeout=_TIMEOUT,
        socket_connect_timeout=_TIMEOUT,
        # No silent retries with back-off: the rotation protocol decides when to retry.
        retry=Retry(NoBackoff(), 0),
    )


@contextmanager
def _admin(url: _Url, ctx: RotationContext, user: str) -> Iterator[redis_py.Redis]:
    ctx.approve(url.target, user)
    conn = _connect(url)
    try:
        conn.ping()
    except redis_py.AuthenticationError as exc:
        conn.close()
        reason = _reason(exc, url.password)
        raise RotationFailed(
            f"authentication failed on {url.where} as {url.user}: {reason}"
        ) from None
    except redis_py.RedisError as exc:
        conn.close()
        raise RotationFailed(
            f"cannot connect to {_unreachable(exc, url.where, url.password)}"
        ) from None
    try:
        yield conn
    finally:
        conn.close()


def _acl(conn: redis_py.Redis, admin: _Url, *args: str) -> object:
    try:
        # Raw commands on purpose: redis-py's acl_setuser() always sends on/off, and a
        # rotation must never enable or disable the user. (redis-py leaves this untyped.)
        return conn.execute_command(*args)  # type: ignore[no-untyped-call]
    except redis_py.RedisError as exc:
        reason = _reason(exc, admin.password)
        raise RotationFailed(f"{args[0]} {args[1]} refused by {admin.where}: {reason}") from None


def _require_user(
    conn: redis_py.Redis, admin: _Url, user: str, *, missing_ok: bool = False
) -> dict[str, list[object]]:
    """The user's ACL entry; RotationFailed when it does not exist (empty if missing_ok)."""
    info = _acl(conn, admin, "ACL", "GETUSER", user)
    if not info and missing_ok:
        return {}
    if not info:
        raise RotationFailed(
            f"ACL user {user} does not exist on {admin.where}: create it first "
            "(ACL SETUSER <user> on ... with its key and command permissions)"
        )
    if isinstance(info, list):  # RESP2 without a response callback: [k1, v1, k2, v2...]
        info = {_text(k): v for k, v in zip(info[::2], info[1::2], strict=True)}
    if not isinstance(info, dict):
        raise RotationFailed(f"unexpected ACL GETUSER reply from {admin.where}")
    return {_text(k): list(v) if isinstance(v, list) else [v] for k, v in info.items()}


def _unreachable(exc: Exception, where: str, *secrets: str) -> str:
    """One generic reason for any failure to reach a Redis server (closed, silent or
    another service alike); the driver's text goes to the server log only."""
    log.warning("connection to %s failed: %s", where, _reason(exc, *secrets))
    return f"{where}: {UNREACHABLE}"


def _digest(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _reason(exc: Exception, *secrets: str) -> str:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
