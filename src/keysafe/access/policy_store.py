"""Named policy documents in the database, compiled into cached policy sets.

Each process keeps the parsed policies and one compiled ``PolicySet`` per combination
of policy names in use (an API key's list). A write on this process clears the cache
at once and announces it (``keysafe.store.invalidations``), so other processes clear
theirs as the announcement arrives; their poll (``refresh``, every half second) remains
a safety net.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from keysafe.access.grants import check_grant
from keysafe.access.models import Deny
from keysafe.access.policy import Policy, PolicySet, parse_policy
from keysafe.clock import Clock
from keysafe.errors import Forbidden, InvalidInput, NotFound
from keysafe.store.engine import read_conn
from keysafe.store.invalidations import KIND_POLICY, UNANNOUNCED, Announcer
from keysafe.store.tables import api_keys, policies, services, tokens
from keysafe.store.tables_users import roles
from keysafe.timefmt import iso_us

MAX_POLICY_BYTES = 256 * 1024


def _check_name(name: str) -> None:
    if not name or len(name) > 128 or not all(c.isalnum() or c in "-_." for c in name):
        raise InvalidInput("a policy name holds 1-128 letters, digits, '-', '_' and '.'")


class PolicyStore:
    def __init__(self, engine: Engine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock
        self._lock = threading.Lock()
        self._policies: dict[str, Policy] | None = None
        self._sets: dict[tuple[str, ...], PolicySet] = {}
        self._version: tuple[int, int] | None = None
        self._postgres = engine.dialect.name == "postgresql"
        # Tells the other processes to drop their policies (set by the server).
        self.announcer: Announcer = UNANNOUNCED

    # -- documents -----------------------------------------------------------------------

    def write(
        self,
        conn: Connection,
        name: str,
        text: str,
        actor: str,
        *,
        holder: tuple[str, ...] | None,
    ) -> dict[str, Any]:
        """Create or replace policy ``name``; raises InvalidInput (naming the line) if the
        document does not parse, Forbidden unless ``holder`` (the writer's policy names,
        None for the root token) holds everything the document grants, as they stand
        before this write (so nobody widens a policy they hold)."""
        _check_name(name)
        if len(text.encode()) > MAX_POLICY_BYTES:
            raise InvalidInput(f"a policy document is at most {MAX_POLICY_BYTES} bytes")
        parsed = parse_policy(name, text)
        check_held(conn, holder, [parsed])
        now = self._clock.now_us()
        insert = postgresql.insert if self._postgres else sqlite.insert
        conn.execute(
            insert(policies)
            .values(name=name, text=text, created_at=now, updated_at=now, updated_by=actor)
            .on_conflict_do_update(
                index_elements=["name"], set_={"text": text, "updated_at": now, "updated_by": actor}
            )
        )
        self.invalidate(conn)
        return {"name": name, "rules": len(parsed.rules), "updated_at": iso_us(now)}

    def delete(self, conn: Connection, name: str) -> None:
        """Delete an unused policy; refuses while a service, role, live key or live
        token names it (they would silently lose what it grants)."""
        users = [
            r.name
            for r in conn.execute(select(services.c.name, services.c.policies))
            if name in orjson.loads(r.policies)
        ]
        users += [
            r.id
            for r in conn.execute(
                select(api_keys.c.id, api_keys.c.policies).where(api_keys.c.revoked_at.is_(None))
            )
            if name in orjson.loads(r.policies)
        ]
        users += [
            f"role {r.name}"
            for r in conn.execute(select(roles.c.name, roles.c.policies))
            if name in orjson.loads(r.policies)
        ]
        now = self._clock.now_us()
        users += [
            r.id
            for r in conn.execute(
                select(tokens.c.id, tokens.c.policies).where(
                    tokens.c.revoked_at.is_(None),
                    tokens.c.policies != "",
                    (tokens.c.expires_at.is_(None)) | (tokens.c.expires_at > now),
                )
            )
            if name in r.policies.split(",")
        ]
        if users:
            raise InvalidInput(f"policy {name!r} is still used by {', '.join(sorted(users)[:5])}")
        if conn.execute(delete(policies).where(policies.c.name == name)).rowcount == 0:
            raise NotFound(f"no policy {name!r}")
        self.invalidate(conn)

    def get(self, name: str) -> dict[str, Any]:
        with read_conn(self._engine) as conn:
            row = conn.execute(select(policies).where(policies.c.name == name)).first()
        if row is None:
            raise NotFound(f"no policy {name!r}")
        return {
            "name": row.name,
            "text": row.text,
            "updated_at": iso_us(row.updated_at),
            "updated_by": row.updated_by,
        }

    def list_policies(self) -> list[dict[str, Any]]:
        with read_conn(self._engine) as conn:
            rows = conn.execute(select(policies).order_by(policies.c.name)).all()
        return [
            {
                "name": r.name,
                "rules": len(parse_policy(r.name, r.text).rules),
                "updated_at": iso_us(r.updated_at),
            }
            for r in rows
        ]

    # -- compiled sets -------------------------------------------------------------------

    def policy_set(self, names: tuple[str, ...]) -> PolicySet:
        """The compiled set of ``names`` (unknown names contribute nothing)."""
        cached = self._sets.get(names)
        if cached is not None:
            return cached
        with self._lock:
            loaded = self._load()
            compiled = PolicySet([loaded[n] for n in dict.fromkeys(names) if n in loaded])
            if len(self._sets) > 10_000:
                self._sets.clear()
            self._sets[names] = compiled
            return compiled

    def _load(self) -> dict[str, Policy]:
        if self._policies is None:
            with read_conn(self._engine) as conn:
                rows = conn.execute(select(policies.c.name, policies.c.text)).all()
                self._version = self._read_version(conn)
            self._policies = {r.name: parse_policy(r.name, r.text) for r in rows}
        return self._policies

    def invalidate(self, conn: Connection | None = None) -> None:
        """Drop the compiled policies and, given the writer's ``conn``, tell the other
        processes to do the same once it commits."""
        if conn is not None:
            self.announcer.announce(conn, KIND_POLICY, "")
        with self._lock:
            self._policies = None
            self._sets = {}

    def refresh(self) -> None:
        """Drop the compiled sets if another process changed the policies."""
        with read_conn(self._engine) as conn:
            version = self._read_version(conn)
        if self._version is not None and version != self._version:
            self.invalidate()

    @staticmethod
    def _read_version(conn: Connection) -> tuple[int, int]:
        row = conn.execute(
            select(func.count(), func.coalesce(func.max(policies.c.updated_at), 0))
        ).one()
        return int(row[0]), int(row[1])


def check_policies_exist(conn: Connection, names: list[str]) -> None:
    """Raise InvalidInput naming every policy in ``names`` that does not exist."""
    known = {
        r.name for r in conn.execute(select(policies.c.name).where(policies.c.name.in_(names)))
    }
    missing = sorted(set(names) - known)
    if missing:
        raise InvalidInput(f"no policy named {', '.join(missing)}")


def set_service_policies(
    conn: Connection, service_id: str, names: list[str], *, holder: tuple[str, ...] | None
) -> None:
    """Replace a service's policies (its keys keep theirs until rolled). Attaching a
    policy grants it: Forbidden unless ``holder`` (None: the root token) holds what the
    policies grant; detaching only takes away."""
    check_policies_exist(conn, names)
    row = conn.execute(select(services.c.policies).where(services.c.id == service_id)).first()
    if row is None:
        raise NotFound(f"no service {service_id}")
    check_held_names(conn, holder, sorted(set(names) - set(orjson.loads(row.policies))))
    conn.execute(
        update(services)
        .where(services.c.id == service_id)
        .values(policies=orjson.dumps(sorted(set(names))).decode())
    )


def load_policies(conn: Connection, names: Iterable[str]) -> list[Policy]:
    """The stored policies of ``names``, parsed, in the order given (unknown names are
    left out: they grant nothing)."""
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return []
    rows = conn.execute(
        select(policies.c.name, policies.c.text).where(policies.c.name.in_(wanted))
    ).all()
    parsed = {r.name: parse_policy(r.name, r.text) for r in rows}
    return [parsed[n] for n in wanted if n in parsed]


def check_held(conn: Connection, holder: tuple[str, ...] | None, granted: Sequence[Policy]) -> None:
    """Nobody hands out more than they hold: raise Forbidden, naming the first capability
    and path not held, unless ``holder`` (a caller's policy names, read in this
    transaction; None for the root token) holds every capability ``granted`` grants on
    every path it grants it (see :func:`keysafe.access.grants.check_grant`)."""
    if holder is None:
        return
    decision = check_grant(load_policies(conn, holder), granted)
    if isinstance(decision, Deny):
        raise Forbidden(f"nobody hands out more than they hold: {decision.reason}")


def check_held_names(
    conn: Connection, holder: tuple[str, ...] | None, names: Iterable[str]
) -> None:
    """:func:`check_held` for the stored policies ``names`` (check they exist first)."""
    if holder is not None:
        check_held(conn, holder, load_policies(conn, names))
