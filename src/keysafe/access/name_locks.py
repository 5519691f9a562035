"""Failure counts and locks of login names that belong to nobody, in the database.

A real user's consecutive failures and lock live on the user's row, which every worker
and node reads. Unknown names are counted the same way (a row per keyed hash of the
name, in the same transaction as the audit event), so that the sequence of answers
(401 ... 401, then 429 ``account_locked``) is the same for a made-up name as for a real
one whichever worker serves each attempt. Rows untouched for ``_KEEP_US`` are pruned.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from sqlalchemy import Connection, Engine, and_, delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from keysafe.store.engine import read_conn, write_txn
from keysafe.store.tables_users import login_name_failures as t

_KEEP_US = 30 * 24 * 3600 * 1_000_000
_LABEL = b"keysafe:login-name:v1"


class UnknownNames:
    """Counts and locks of unknown names, shared by every process on the database."""

    def __init__(self, engine: Engine, key: Callable[[], bytes]) -> None:
        self._engine = engine
        self._key = key
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    def _hash(self, name: str) -> bytes:
        return hmac.new(self._key(), _LABEL + name.encode(), hashlib.sha256).digest()

    def locked_until(self, name: str) -> int | None:
        """When the name's lock ends (unix microseconds), or None."""
        with read_conn(self._engine) as conn:
            until = conn.execute(
                select(t.c.locked_until).where(t.c.name_hash == self._hash(name))
            ).scalar()
        return None if until is None else int(until)

    def failed(self, conn: Connection, name: str, now: int, threshold: int, lock_us: int) -> bool:
        """Count one failure inside the caller's write transaction; True when it locks
        the name (the count restarts, as a user's does)."""
        key = self._hash(name)
        stmt = self._insert(t).values(name_hash=key, failed_count=1, updated_at=now)
        count = conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["name_hash"],
                set_={"failed_count": t.c.failed_count + 1, "updated_at": now},
            ).returning(t.c.failed_count)
        ).scalar_one()
        locked = int(count) >= threshold
        if locked:
            conn.execute(
                t.update()
                .where(t.c.name_hash == key)
                .values(failed_count=0, locked_until=now + lock_us)
            )
        # Bounded: names nobody tried for a month (and not locked) are forgotten.
        conn.execute(
            delete(t).where(
                and_(
                    t.c.updated_at < now - _KEEP_US,
                    or_(t.c.locked_until.is_(None), t.c.locked_until < now),
                )
            )
        )
        return locked

    def clear(self, name: str) -> None:
        """Forget the name's failures and lock (an admin unlock)."""
        with write_txn(self._engine) as conn:
            conn.execute(delete(t).where(t.c.name_hash == self._hash(name)))
