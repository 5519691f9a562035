"""Admin-approved network targets of rotators: the list, and the check every connection
passes.

Listing, adding and removing a target needs ``admin`` on ``sys/rotation`` (the root
token passes); each is audited (``rotation:target-list|add|remove``). ``require`` is
what a rotator calls, in its worker thread, just before it connects: it reads the list
from the database each time, so a removal stops the next connection of every node.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import anyio.to_thread
import orjson
from sqlalchemy import Engine, and_, delete, insert, select, update

from keysafe.access.authorizer import Authorizer
from keysafe.access.models import RequestContext, request_event
from keysafe.audit.models import OUTCOME_OK
from keysafe.audit.service import AuditLog
from keysafe.clock import Clock
from keysafe.errors import InvalidInput, NotFound, RotationFailed
from keysafe.rotation.targets import Target, make_target
from keysafe.store.engine import read_conn, write_txn
from keysafe.store.tables_rotation import rotation_targets as T
from keysafe.timefmt import iso_us

__all__ = ["ADMIN_PATH", "ANY_LOGIN", "TargetService"]

ADMIN_PATH = "sys/rotation"
MAX_ROLES = 64
# The login of a connection that creates logins of its own (dynamic credentials): only
# an approval for any login (no roles listed) covers it.
ANY_LOGIN = "*"


class TargetService:
    def __init__(
        self, engine: Engine, audit: AuditLog, clock: Clock, authorizer: Authorizer
    ) -> None:
        self._engine = engine
        self._audit = audit
        self._clock = clock
        self._authorizer = authorizer

    # -- the check -------------------------------------------------------------------------

    def refusal(self, target: Target, role: str) -> str | None:
        """Why connecting to ``target`` to change ``role`` is not approved; None if it is."""
        with read_conn(self._engine) as conn:
            row = conn.execute(select(T.c.roles).where(_where(target))).first()
        if row is None:
            return f"{target.describe()} is not an approved rotation target"
        roles: list[str] = orjson.loads(row.roles)
        if roles and role == ANY_LOGIN:
            return f"{target.describe()} is approved only for the logins {', '.join(roles)}"
        if roles and role not in roles:
            return f"{target.describe()} is not approved for the login {role}"
        return None

    def require(self, target: Target, role: str) -> None:
        """Called before every connection a rotator makes; RotationFailed unless an
        admin approved ``target`` (for ``role``, when the approval names roles)."""
        reason = self.refusal(target, role)
        if reason is not None:
            raise RotationFailed(
                f"{reason}: an admin must approve it (keysafe rotation target add)"
            )

    # -- the list --------------------------------------------------------------------------

    async def _admin(self, ctx: RequestContext, op: str) -> None:
        await self._authorizer.enforce(self._audit, ctx, "admin", op, ADMIN_PATH)

    async def list(self, ctx: RequestContext) -> list[dict[str, Any]]:
        """Every approved target. Needs ``admin`` on ``sys/rotation``."""
        await self._admin(ctx, "rotation:target-list")

        def read() -> list[dict[str, Any]]:
            with read_conn(self._engine) as conn:
                rows = conn.execute(select(T).order_by(T.c.kind, T.c.host, T.c.port, T.c.database))
                return [_document(r._mapping) for r in rows]

        items = await anyio.to_thread.run_sync(read)
        await self._audit.record(
            request_event(ctx, self._clock.now_us(), "rotation:target-list", ADMIN_PATH, OUTCOME_OK)
        )
        return items

    async def add(
        self,
        ctx: RequestContext,
        *,
        kind: str,
        host: str,
        port: int | None,
        database: str,
        roles: Sequence[str] = (),
    ) -> dict[str, Any]:
        """Approve a target (or replace the roles of one already approved). Needs
        ``admin`` on ``sys/rotation``; InvalidInput for a bad kind, host, port, database
        or role name."""
        await self._admin(ctx, "rotation:target-add")
        target = make_target(kind, host, port, database)
        return await self.approve(ctx, target, roles)

    async def approve(
        self,
        ctx: RequestContext,
        target: Target,
        roles: Sequence[str] = (),
        *,
        merge: bool = False,
    ) -> dict[str, Any]:
        """Store the approval of ``target`` (the caller is already authorised): its
        roles replace those of an earlier approval, or with ``merge`` join them (an
        approval for any role stays one)."""
        clean = sorted({r.strip() for r in roles if r.strip()})
        if len(clean) > MAX_ROLES or any(
            len(r.encode()) > 63 or not r.isprintable() for r in clean
        ):
            raise InvalidInput(f"at most {MAX_ROLES} role names of 1-63 printable bytes")
        now = self._clock.now_us()
        detail = target.describe() + (f" roles {','.join(clean)}" if clean else "")
        event = request_event(ctx, now, "rotation:target-add", ADMIN_PATH, OUTCOME_OK, detail)

        def write() -> dict[str, Any]:
            with write_txn(self._engine) as conn:
                found = conn.execute(select(T.c.id, T.c.roles).where(_where(target))).first()
                roles_now = clean
                if merge and found is not None:
                    before: list[str] = orjson.loads(found.roles)
                    roles_now = sorted(set(before) | set(clean)) if before else []
                values = {"roles": orjson.dumps(roles_now).decode()}
                if found is None:
                    conn.execute(
                        insert(T).values(
                            id="rtg_" + os.urandom(8).hex(),
                            kind=target.kind,
                            host=target.host,
                            port=target.port,
                            database=target.database,
                            created_at=now,
                            created_by=ctx.principal.token_id[:64],
                            **values,
                        )
                    )
                else:
                    conn.execute(update(T).where(T.c.id == found.id).values(**values))
                self._audit.append_in_txn(conn, [event])
                row = conn.execute(select(T).where(_where(target))).one()
                return _document(row._mapping)

        return await anyio.to_thread.run_sync(write)

    async def remove(self, ctx: RequestContext, target_id: str) -> None:
        """Withdraw an approval: the next connection to it is refused. Needs ``admin``
        on ``sys/rotation``; NotFound for an unknown id."""
        await self._admin(ctx, "rotation:target-remove")
        now = self._clock.now_us()

        def write() -> None:
            with write_txn(self._engine) as conn:
                row = conn.execute(select(T).where(T.c.id == target_id)).first()
                if row is None:
                    raise NotFound(f"no approved rotation target {target_id}")
                conn.execute(delete(T).where(T.c.id == target_id))
                doc = _document(row._mapping)
                event = request_event(
                    ctx, now, "rotation:target-remove", ADMIN_PATH, OUTCOME_OK, doc["target"]
                )
                self._audit.append_in_txn(conn, [event])

        await anyio.to_thread.run_sync(write)


def _where(target: Target) -> Any:
    return and_(
        T.c.kind == target.kind,
        T.c.host == target.host,
        T.c.port == target.port,
        T.c.database == target.database,
    )


def _document(row: Any) -> dict[str, Any]:
    target = Target(row["kind"], row["host"], row["port"], row["database"])
    return {
        "id": row["id"],
        "kind": target.kind,
        "host": target.host,
        "port": target.port,
        "database": target.database,
        "roles": orjson.loads(row["roles"]),
        "target": target.describe(),
        "created_at": iso_us(row["created_at"]),
        "created_by": row["created_by"],
    }
