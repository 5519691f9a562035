"""People's accounts and roles: create, list, show, roles, unlock, disable, delete.

A user holds roles; a role is a named list of policies; a person's session is judged by
the union of their roles' policies. Role ``admin`` is built in: asking for it on a vault
that lacks it creates it, bound to a policy ``admin`` (created if missing) that grants
every capability on ``**``.

Nobody hands out more than they hold: a caller that is not the root token may only give
roles (or write roles) whose policies grant nothing it does not hold itself (every
capability on every path, see :mod:`keysafe.access.grants`).

Names are case-insensitive: stored and looked up in lower case.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from argon2 import PasswordHasher
from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from keysafe.access.passwords import check_password_policy, hash_password
from keysafe.access.policy_rules import CAPABILITIES
from keysafe.access.policy_store import PolicyStore, check_held_names, check_policies_exist
from keysafe.access.sessions import SessionStore
from keysafe.clock import Clock
from keysafe.errors import Conflict, InvalidInput, NotFound
from keysafe.store.engine import read_conn
from keysafe.store.tables import policies as policies_table
from keysafe.store.tables_users import recovery_codes, roles, user_roles, users
from keysafe.timefmt import iso_us

__all__ = ["ADMIN_POLICY_TEXT", "ADMIN_ROLE", "UserAccounts", "UserRow", "normalise_name"]

ADMIN_ROLE = "admin"
ADMIN_POLICY_TEXT = (
    "# Built in: every capability on every path (keysafe user create --role admin).\n"
    "[[rule]]\n"
    'path = "**"\n'
    f"capabilities = {json.dumps(list(CAPABILITIES))}\n"
)

# 56 characters at most, so that the actor id ``user:<name>`` fits audit's 64.
_NAME = re.compile(r"[a-z0-9][a-z0-9._@-]{0,55}")
_ROLE = re.compile(r"[A-Za-z0-9._-]{1,128}")


def normalise_name(name: str) -> str | None:
    """The canonical (lower-case) form of a user name, or None if it cannot be one."""
    folded = name.strip().lower()
    return folded if folded.isascii() and _NAME.fullmatch(folded) else None


def _user_name(name: str) -> str:
    folded = normalise_name(name)
    if folded is None:
        raise InvalidInput(
            "a user name is 1-56 characters: letters, digits, '.', '_', '@' and '-', "
            "starting with a letter or digit"
        )
    return folded


def _role_name(name: str) -> str:
    if not _ROLE.fullmatch(name):
        raise InvalidInput("a role name holds 1-128 letters, digits, '-', '_' and '.'")
    return name


@dataclass(frozen=True, slots=True)
class UserRow:
    """A stored user as the login path needs it (never leaves the server)."""

    id: str
    name: str
    password_hash: str
    totp_confirmed: bool
    totp_pending: bool
    totp_last_step: int | None
    failed_count: int
    locked_until: int | None
    disabled: bool

    @classmethod
    def of(cls, row: Any) -> UserRow:
        return cls(
            id=row.id,
            name=row.name,
            password_hash=row.password_hash,
            totp_confirmed=bool(row.totp_confirmed),
            totp_pending=row.totp_ciphertext is not None and not row.totp_confirmed,
            totp_last_step=row.totp_last_step,
            failed_count=row.failed_count,
            locked_until=row.locked_until,
            disabled=row.disabled_at is not None,
        )


class UserAccounts:
    def __init__(
        self,
        engine: Engine,
        policy_store: PolicyStore,
        sessions: SessionStore,
        clock: Clock,
        *,
        hasher: Callable[[], PasswordHasher] | None = None,
    ) -> None:
        self._engine = engine
        self._policies = policy_store
        self._sessions = sessions
        self._clock = clock
        self._hasher = hasher
        self._postgres = engine.dialect.name == "postgresql"

    def hasher(self) -> PasswordHasher | None:
        """The password hasher (None: the production default of passwords.py)."""
        return self._hasher() if self._hasher else None

    # -- users ---------------------------------------------------------------------------

    def new_password_hash(self, name: str, password: str) -> str:
        """Check ``password`` against the policy and hash it (slow: call it outside a
        write transaction). Raises InvalidInput naming the rule broken."""
        check_password_policy(password, _user_name(name))
        return hash_password(password, hasher=self.hasher())

    def create(
        self,
        conn: Connection,
        name: str,
        password_hash: str,
        role_names: list[str],
        creator: str,
        holder: tuple[str, ...] | None,
    ) -> dict[str, Any]:
        """Create user ``name`` with ``role_names``; ``holder`` is the caller's policies
        (None for the root token). Raises InvalidInput, Conflict, Forbidden."""
        name = _user_name(name)
        if conn.execute(select(users.c.id).where(users.c.name == name)).first():
            raise Conflict(f"a user named {name!r} exists already")
        self._check_roles(conn, role_names, creator, holder)
        record = {
            "id": "usr_" + secrets.token_hex(8),
            "name": name,
            "password_hash": password_hash,
            "totp_kek_version": None,
            "totp_wrapped_dek": None,
            "totp_ciphertext": None,
            "totp_confirmed": False,
            "totp_last_step": None,
            "failed_count": 0,
            "locked_until": None,
            "disabled_at": None,
            "created_at": self._clock.now_us(),
            "created_by": creator[:64],
            "last_login_at": None,
            "last_login_from": None,
        }
        conn.execute(insert(users).values(**record))
        for role in sorted(set(role_names)):
            conn.execute(insert(user_roles).values(user_id=record["id"], role=role))
        return self._public(conn, record)

    def find(self, name: str, conn: Connection | None = None) -> UserRow | None:
        """The user called ``name`` (any case), or None."""
        folded = normalise_name(name)
        if folded is None:
            return None
        if conn is None:
            with read_conn(self._engine) as own:
                row = own.execute(select(users).where(users.c.name == folded)).first()
        else:
            row = conn.execute(select(users).where(users.c.name == folded)).first()
        return None if row is None else UserRow.of(row)

    def by_id(self, conn: Connection, user_id: str) -> UserRow:
        row = conn.execute(select(users).where(users.c.id == user_id)).first()
        if row is None:
            raise NotFound("no such user")
        return UserRow.of(row)

    def _row(self, conn: Connection, name: str) -> Any:
        row = conn.execute(select(users).where(users.c.name == _user_name(name))).mappings().first()
        if row is None:
            raise NotFound(f"no user {name!r}")
        return row

    def show(self, name: str) -> dict[str, Any]:
        with read_conn(self._engine) as conn:
            return self._public(conn, dict(self._row(conn, name)))

    def list_users(self) -> list[dict[str, Any]]:
        with read_conn(self._engine) as conn:
            rows = conn.execute(select(users).order_by(users.c.name)).mappings().all()
            return [self._public(conn, dict(r)) for r in rows]

    def set_roles(
        self,
        conn: Connection,
        name: str,
        role_names: list[str],
        actor: str,
        holder: tuple[str, ...] | None,
    ) -> dict[str, Any]:
        """Replace the roles of ``name``; every process is told at once (the cache
        expiry is the net)."""
        row = self._row(conn, name)
        self._check_roles(conn, role_names, actor, holder)
        conn.execute(delete(user_roles).where(user_roles.c.user_id == row["id"]))
        for role in sorted(set(role_names)):
            conn.execute(insert(user_roles).values(user_id=row["id"], role=role))
        self._sessions.forget(conn)
        return self._public(conn, dict(row))

    def unlock(self, conn: Connection, name: str) -> None:
        """Clear a lockout and the failure count."""
        row = self._row(conn, name)
        conn.execute(
            update(users).where(users.c.id == row["id"]).values(failed_count=0, locked_until=None)
        )

    def set_disabled(self, conn: Connection, name: str, disabled: bool) -> int:
        """Disable (revoking every session; returns how many) or enable ``name``."""
        row = self._row(conn, name)
        at = self._clock.now_us() if disabled else None
        conn.execute(update(users).where(users.c.id == row["id"]).values(disabled_at=at))
        revoked = self._sessions.revoke_all(conn, row["id"]) if disabled else 0
        self._sessions.forget(conn)
        return revoked

    def delete(self, conn: Connection, name: str) -> None:
        """Delete ``name`` with its sessions, roles and recovery codes."""
        row = self._row(conn, name)
        from keysafe.store.tables_users import sessions

        for table in (sessions, recovery_codes, user_roles):
            conn.execute(delete(table).where(table.c.user_id == row["id"]))
        conn.execute(delete(users).where(users.c.id == row["id"]))
        self._sessions.forget(conn)

    def reset_totp(self, conn: Connection, name: str) -> None:
        """Remove the second factor of ``name`` (lost device): they log in with the
        password alone until they enrol again."""
        row = self._row(conn, name)
        conn.execute(
            update(users)
            .where(users.c.id == row["id"])
            .values(
                totp_kek_version=None,
                totp_wrapped_dek=None,
                totp_ciphertext=None,
                totp_confirmed=False,
                totp_last_step=None,
            )
        )
        conn.execute(delete(recovery_codes).where(recovery_codes.c.user_id == row["id"]))

    def _public(self, conn: Connection, record: dict[str, Any]) -> dict[str, Any]:
        """A user without hashes or secrets; times as ISO strings."""
        held = sorted(
            r.role
            for r in conn.execute(
                select(user_roles.c.role).where(user_roles.c.user_id == record["id"])
            )
        )
        now = self._clock.now_us()
        locked = record["locked_until"] is not None and record["locked_until"] > now
        return {
            "id": record["id"],
            "name": record["name"],
            "roles": held,
            "mfa": bool(record["totp_confirmed"]),
            "locked_until": iso_us(record["locked_until"]) if locked else None,
            "failed_logins": record["failed_count"],
            "disabled": record["disabled_at"] is not None,
            "created_at": iso_us(record["created_at"]),
            "created_by": record["created_by"],
            "last_login_at": iso_us(record["last_login_at"]),
            "last_login_from": record["last_login_from"],
        }

    # -- roles ---------------------------------------------------------------------------

    def write_role(
        self,
        conn: Connection,
        name: str,
        policy_names: list[str],
        actor: str,
        holder: tuple[str, ...] | None,
    ) -> dict[str, Any]:
        """Create or replace role ``name``; every policy must exist and (for a caller
        other than root) be held by the caller."""
        _role_name(name)
        names = sorted(set(policy_names))
        if not names:
            raise InvalidInput("a role needs at least one policy")
        check_policies_exist(conn, names)
        check_held_names(conn, holder, names)
        now = self._clock.now_us()
        ins = postgresql.insert if self._postgres else sqlite.insert
        text = orjson.dumps(names).decode()
        conn.execute(
            ins(roles)
            .values(name=name, policies=text, created_at=now, updated_at=now, updated_by=actor[:64])
            .on_conflict_do_update(
                index_elements=["name"],
                set_={"policies": text, "updated_at": now, "updated_by": actor[:64]},
            )
        )
        self._sessions.forget(conn)
        return {"name": name, "policies": names, "updated_at": iso_us(now)}

    def list_roles(self) -> list[dict[str, Any]]:
        with read_conn(self._engine) as conn:
            rows = conn.execute(select(roles).order_by(roles.c.name)).all()
            counts: dict[str, int] = {}
            for r in conn.execute(select(user_roles.c.role)):
                counts[r.role] = counts.get(r.role, 0) + 1
        return [
            {
                "name": r.name,
                "policies": orjson.loads(r.policies),
                "users": counts.get(r.name, 0),
                "updated_at": iso_us(r.updated_at),
            }
            for r in rows
        ]

    def delete_role(self, conn: Connection, name: str) -> None:
        """Delete a role nobody holds. Raises NotFound, InvalidInput."""
        if conn.execute(select(user_roles.c.user_id).where(user_roles.c.role == name)).first():
            raise InvalidInput(f"role {name!r} is still held by a user")
        if conn.execute(delete(roles).where(roles.c.name == name)).rowcount == 0:
            raise NotFound(f"no role {name!r}")

    def _check_roles(
        self,
        conn: Connection,
        role_names: Iterable[str],
        actor: str,
        holder: tuple[str, ...] | None,
    ) -> None:
        wanted = sorted(set(role_names))
        for role in wanted:
            _role_name(role)
        if ADMIN_ROLE in wanted:
            self._ensure_admin_role(conn, actor)
        found = {
            r.name: orjson.loads(r.policies)
            for r in conn.execute(select(roles).where(roles.c.name.in_(wanted)))
        }
        missing = [r for r in wanted if r not in found]
        if missing:
            raise InvalidInput(
                f"no role named {', '.join(missing)}"
                " (create it first: keysafe role write NAME --policy P)"
            )
        check_held_names(conn, holder, sorted({p for names in found.values() for p in names}))

    def _ensure_admin_role(self, conn: Connection, actor: str) -> None:
        """Create the built-in role (and policy) ``admin`` if missing."""
        if conn.execute(select(roles.c.name).where(roles.c.name == ADMIN_ROLE)).first():
            return
        exists = conn.execute(
            select(policies_table.c.name).where(policies_table.c.name == ADMIN_ROLE)
        ).first()
        if not exists:
            # Built in; whoever asked for the role is checked against it right after.
            self._policies.write(conn, ADMIN_ROLE, ADMIN_POLICY_TEXT, actor[:64], holder=None)
        now = self._clock.now_us()
        conn.execute(
            insert(roles).values(
                name=ADMIN_ROLE,
                policies=orjson.dumps([ADMIN_ROLE]).decode(),
                created_at=now,
                updated_at=now,
                updated_by=actor[:64],
            )
        )
