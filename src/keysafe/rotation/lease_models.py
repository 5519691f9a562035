"""Dynamic roles and leases: value types, validation, and the role table's operations.

Lease states and audit event names are persisted: only ever add.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, delete, func, select

from keysafe.errors import Conflict, InvalidInput, NotFound
from keysafe.rotation.dynamic import check_grants
from keysafe.secrets.paths import validate_path
from keysafe.store.tables_leases import dynamic_roles, leases
from keysafe.timefmt import iso_us

STATE_ACTIVE = "active"
STATE_REVOKED = "revoked"
STATE_EXPIRED = "expired"
STATE_REVOKE_FAILED = "revoke_failed"
# States in which the login may still exist on the target.
LIVE_STATES = (STATE_ACTIVE, STATE_REVOKE_FAILED)

ENGINE_POSTGRES = "postgres"
ENGINES = frozenset({ENGINE_POSTGRES})

# Policies grant ``read`` on ``creds/<role>`` to let a caller issue credentials.
CREDS_PREFIX = "creds/"
# Administrators of leases (list, revoke anyone's, revoke by prefix): admin on this.
LEASE_ADMIN_PATH = "sys/lease"

DEFAULT_TTL = 3600
DEFAULT_MAX_TTL = 24 * 3600
LONGEST_TTL = 366 * 24 * 3600  # no temporary login outlives a year

_NAME = re.compile(r"[a-z0-9][a-z0-9_.\-]*(/[a-z0-9][a-z0-9_.\-]*)*")
MAX_NAME = 200


def validate_role_name(name: str) -> str:
    """``name`` if it is a valid role name such as ``postgres/reporting``; InvalidInput."""
    if not name or len(name) > MAX_NAME:
        raise InvalidInput(f"a role name has 1 to {MAX_NAME} characters")
    if not _NAME.fullmatch(name):
        raise InvalidInput(
            f"role name {name!r}: lowercase letters, digits, '_', '-', '.' in '/'-separated "
            "segments, e.g. postgres/reporting"
        )
    if name.split("/", 1)[0] == "roles":
        # /api/v1/creds/roles/... is the role configuration itself.
        raise InvalidInput("a role name may not start with 'roles'")
    return name


@dataclass(frozen=True, slots=True)
class RoleConfig:
    """A template for temporary logins on one database."""

    name: str
    connection_secret: str
    grants: tuple[str, ...]
    default_ttl: int = DEFAULT_TTL
    max_ttl: int = DEFAULT_MAX_TTL
    engine: str = ENGINE_POSTGRES

    @classmethod
    def checked(
        cls,
        name: str,
        *,
        connection_secret: str,
        grants: Sequence[str],
        default_ttl: int | None = None,
        max_ttl: int | None = None,
        engine: str = ENGINE_POSTGRES,
    ) -> RoleConfig:
        """A validated config; InvalidInput names the first problem."""
        validate_role_name(name)
        if engine not in ENGINES:
            raise InvalidInput(f"unknown engine {engine!r}: keysafe supports {sorted(ENGINES)}")
        validate_path(connection_secret)
        max_ttl = DEFAULT_MAX_TTL if max_ttl is None else max_ttl
        default_ttl = min(DEFAULT_TTL, max_ttl) if default_ttl is None else default_ttl
        if not 1 <= max_ttl <= LONGEST_TTL:
            raise InvalidInput(f"max TTL must be between 1 s and {LONGEST_TTL // 86400} days")
        if not 1 <= default_ttl <= max_ttl:
            raise InvalidInput(
                f"the TTL ({default_ttl} s) must be positive and at most the max TTL ({max_ttl} s)"
            )
        return cls(name, connection_secret, tuple(check_grants(grants)), default_ttl, max_ttl)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "engine": self.engine,
            "connection_secret": self.connection_secret,
            "grants": list(self.grants),
            "ttl": self.default_ttl,
            "max_ttl": self.max_ttl,
        }


@dataclass(frozen=True, slots=True)
class Issued:
    """A new login and its lease; the only time the password is shown."""

    lease_id: str
    role: str
    username: str
    password: str = field(repr=False)
    expires_at: int
    max_expires_at: int
    ttl: int
    warnings: tuple[str, ...] = ()
    host: str = ""
    port: int = 0
    database: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "lease_id": self.lease_id,
            "role": self.role,
            "username": self.username,
            "password": self.password,
            "expires_at": iso_us(self.expires_at),
            "max_expires_at": iso_us(self.max_expires_at),
            "ttl": self.ttl,
            "warnings": list(self.warnings),
            "host": self.host,
            "port": self.port,
            "database": self.database,
        }


@dataclass(frozen=True, slots=True)
class LeaseRow:
    id: str
    role: str
    username: str
    state: str
    created_at: int
    created_by: str
    expires_at: int
    max_expires_at: int
    revoked_at: int | None
    revoke_error: str | None
    attempts: int

    @classmethod
    def from_row(cls, row: Any) -> LeaseRow:
        return cls(
            row.id,
            row.role,
            row.username,
            row.state,
            row.created_at,
            row.created_by,
            row.expires_at,
            row.max_expires_at,
            row.revoked_at,
            row.revoke_error,
            row.attempts,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "lease_id": self.id,
            "role": self.role,
            "username": self.username,
            "state": self.state,
            "created_at": iso_us(self.created_at),
            "created_by": self.created_by,
            "expires_at": iso_us(self.expires_at),
            "max_expires_at": iso_us(self.max_expires_at),
            "revoked_at": iso_us(self.revoked_at),
            "revoke_error": self.revoke_error,
            "attempts": self.attempts,
        }


def cap_expiry(now: int, increment_s: int, max_expires_at: int) -> tuple[int, bool]:
    """The new expiry for a lease extended by ``increment_s`` from ``now``, capped at its
    maximum (unix microseconds), and whether the cap applied (Vault's behaviour)."""
    wanted = now + increment_s * 1_000_000
    return (max_expires_at, True) if wanted > max_expires_at else (wanted, False)


# -- the role table ---------------------------------------------------------------------


def _role(row: Any) -> RoleConfig:
    return RoleConfig(
        row.name,
        row.connection_secret,
        tuple(orjson.loads(row.grants)),
        row.default_ttl,
        row.max_ttl,
        row.engine,
    )


def write_role(conn: Connection, config: RoleConfig, actor: str, now: int) -> RoleConfig:
    """Create or replace ``config`` in ``conn``'s transaction."""
    values: Mapping[str, Any] = {
        "engine": config.engine,
        "connection_secret": config.connection_secret,
        "grants": orjson.dumps(list(config.grants)).decode(),
        "default_ttl": config.default_ttl,
        "max_ttl": config.max_ttl,
        "updated_at": now,
        "updated_by": actor,
    }
    done = conn.execute(
        dynamic_roles.update().where(dynamic_roles.c.name == config.name).values(**values)
    )
    if done.rowcount == 0:
        conn.execute(dynamic_roles.insert().values(name=config.name, created_at=now, **values))
    return config


def read_role(conn: Connection, name: str) -> RoleConfig:
    """The role ``name``; NotFound."""
    row = conn.execute(select(dynamic_roles).where(dynamic_roles.c.name == name)).first()
    if row is None:
        raise NotFound(f"no credentials role {name}")
    return _role(row)


def list_roles(conn: Connection) -> list[RoleConfig]:
    return [_role(r) for r in conn.execute(select(dynamic_roles).order_by(dynamic_roles.c.name))]


def delete_role(conn: Connection, name: str) -> None:
    """Delete ``name``; Conflict while logins of it may still exist (revoke them first),
    so that no login outlives the record of how to drop it."""
    read_role(conn, name)
    live = conn.execute(
        select(func.count())
        .select_from(leases)
        .where(leases.c.role == name, leases.c.state.in_(LIVE_STATES))
    ).scalar_one()
    if live:
        raise Conflict(
            f"role {name} still has {live} live lease(s): revoke them first "
            f"(keysafe lease revoke --prefix {name})"
        )
    conn.execute(delete(dynamic_roles).where(dynamic_roles.c.name == name))
