"""The rotation engine's database work: policies, the claim lock, runs and steps.

Every function here is one short transaction. None is ever held across a call to a
rotation target (on SQLite a write transaction locks the whole database).

The claim is the only lock: ``claim`` is one conditional UPDATE that succeeds only when
the policy's claim is free or has lapsed, which the database serialises on the row
(SQLite: BEGIN IMMEDIATE; PostgreSQL: the row lock, the WHERE clause re-checked after
a concurrent writer commits). Each later write of the owner is conditional on still
holding the claim, so a process that lost it (it stalled past the lease) changes
nothing and stops.

Writes go through a group-commit batcher (``keysafe.store.batcher``): the steps of many
concurrent rotations share one transaction, each in its own SAVEPOINT, so a step that
finds its claim gone rolls back alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, insert, or_, select, update

from keysafe.audit.models import AuditEvent
from keysafe.audit.service import AuditLog
from keysafe.clock import Clock
from keysafe.rotation.models import PROMOTED, Policy, Run
from keysafe.secrets.models import WriteResult
from keysafe.store.batcher import WriteBatcher
from keysafe.store.engine import read_conn
from keysafe.store.prefix import starts_with
from keysafe.store.tables_rotation import rotation_policies as P
from keysafe.store.tables_rotation import rotation_runs as R

__all__ = ["LostClaim", "RotationStore"]


class LostClaim(Exception):
    """This process no longer holds the policy's claim: another one took it over."""


class RotationStore:
    def __init__(
        self, engine: Engine, audit: AuditLog, clock: Clock, owner: str, claim_seconds: float
    ) -> None:
        self._engine = engine
        self._audit = audit
        self._clock = clock
        self.owner = owner
        self.claim_us = int(claim_seconds * 1_000_000)
        self._writes = WriteBatcher(engine, "keysafe-rotation-writer")

    def close(self) -> None:
        """Stop the writer thread."""
        self._writes.stop()

    @property
    def writer_alive(self) -> bool:
        """False while the writer thread is dead (restarted by the next write)."""
        return self._writes.alive

    def revive_writer(self) -> bool:
        """Restart the writer thread if it died; True when it did."""
        return self._writes.revive()

    # -- policies --------------------------------------------------------------------------

    def policy(self, path: str) -> Policy | None:
        with read_conn(self._engine) as conn:
            row = conn.execute(select(P).where(P.c.path == path)).first()
        return None if row is None else Policy.from_row(row)

    def policies(self, prefix: str) -> list[Policy]:
        query = select(P).order_by(P.c.path)
        if prefix:
            query = query.where(starts_with(P.c.path, prefix))
        with read_conn(self._engine) as conn:
            return [Policy.from_row(r) for r in conn.execute(query)]

    async def put_policy(self, values: Mapping[str, Any], event: AuditEvent) -> bool:
        """Create or replace the schedule of ``values['path']`` (its run state is kept);
        True when it was created."""
        now = self._clock.now_us()

        def run(conn: Connection) -> bool:
            exists = conn.execute(
                select(P.c.path, P.c.active_run).where(P.c.path == values["path"])
            ).first()
            if exists is None:
                conn.execute(insert(P).values(**values, failures=0, created_at=now, updated_at=now))
            else:
                changes = dict(values)
                if exists.active_run is not None:
                    # A run in flight stays due (resumed at once after a crash).
                    changes.pop("next_due", None)
                conn.execute(
                    update(P).where(P.c.path == values["path"]).values(**changes, updated_at=now)
                )
            self._audit.append_in_txn(conn, [event])
            return exists is None

        return await self._writes.run(run)

    async def delete_policy(self, path: str, event: AuditEvent) -> bool:
        """Drop the schedule unless a run is in flight or a rotation holds its claim
        (then False: deleting would strand a pending value)."""

        def run(conn: Connection) -> bool:
            gone = conn.execute(
                delete(P).where(
                    P.c.path == path,
                    P.c.active_run.is_(None),
                    or_(P.c.claimed_until.is_(None), P.c.claimed_until < self._clock.now_us()),
                )
            ).rowcount
            if gone:
                self._audit.append_in_txn(conn, [event])
            return bool(gone)

        return await self._writes.run(run)

    # -- the claim -------------------------------------------------------------------------

    def candidates(self, limit: int) -> list[str]:
        """Paths with work to do now (due, a run to resume, a value to retire) whose
        claim is free; claiming them is still needed (another process may be faster)."""
        now = self._clock.now_us()
        query = (
            select(P.c.path)
            .where(
                or_(P.c.claimed_until.is_(None), P.c.claimed_until < now),
                # A run in flight is due at once (``start`` sets next_due to its start);
                # a failed one that is still restoring waits for its backoff.
                or_(P.c.next_due <= now, P.c.retire_at <= now),
            )
            .order_by(P.c.next_due)
            .limit(limit)
        )
        with read_conn(self._engine) as conn:
            return [r.path for r in conn.execute(query)]

    async def claim(self, path: str) -> Policy | None:
        """Take the policy's claim if it is free or lapsed (one conditional UPDATE);
        the policy as claimed, or None when another process holds it (or it is gone)."""
        now = self._clock.now_us()

        def run(conn: Connection) -> Policy | None:
            taken = conn.execute(
                update(P)
                .where(
                    P.c.path == path,
                    or_(P.c.claimed_until.is_(None), P.c.claimed_until < now),
                )
                .values(claimed_by=self.owner, claimed_until=now + self.claim_us)
            ).rowcount
            if not taken:
                return None
            # Read back in the same transaction (not RETURNING: SQLite before 3.35).
            return Policy.from_row(conn.execute(select(P).where(P.c.path == path)).one())

        return await self._writes.run(run)

    def _mine(self) -> Any:
        return and_(P.c.claimed_by == self.owner, P.c.claimed_until.is_not(None))

    async def renew(self, path: str) -> bool:
        """Extend the claim; False when another process holds it now."""

        def run(conn: Connection) -> bool:
            done = conn.execute(
                update(P)
                .where(P.c.path == path, self._mine())
                .values(claimed_until=self._clock.now_us() + self.claim_us)
            ).rowcount
            return bool(done)

        return await self._writes.run(run)

    async def release(self, path: str, changes: Mapping[str, Any] | None = None) -> None:
        """Give the claim back (with ``changes`` to the policy), if still ours."""

        def run(conn: Connection) -> None:
            conn.execute(
                update(P)
                .where(P.c.path == path, self._mine())
                .values(**(changes or {}), claimed_by=None, claimed_until=None)
            )

        await self._writes.run(run)

    # -- runs ------------------------------------------------------------------------------

    def run(self, run_id: str) -> Run | None:
        with read_conn(self._engine) as conn:
            row = conn.execute(select(R).where(R.c.id == run_id)).first()
        return None if row is None else Run.from_row(row)

    def runs(self, path: str, limit: int = 10) -> list[Run]:
        with read_conn(self._engine) as conn:
            rows = conn.execute(
                select(R).where(R.c.path == path).order_by(R.c.started_at.desc()).limit(limit)
            )
            return [Run.from_row(r) for r in rows]

    def previous_version(self, path: str) -> int | None:
        """The version the latest promotion made "previous", if any."""
        with read_conn(self._engine) as conn:
            row = conn.execute(
                select(R.c.base_version)
                .where(R.c.path == path, R.c.step.in_(PROMOTED))
                .order_by(R.c.finished_at.desc())
                .limit(1)
            ).first()
        return None if row is None else row.base_version

    async def start(self, values: Mapping[str, Any], event: AuditEvent) -> None:
        """Insert a run with its sealed pending value and mark it the policy's run in
        flight, with its audit event, in one transaction; LostClaim if not ours."""

        def run(conn: Connection) -> None:
            owned = conn.execute(
                update(P)
                .where(P.c.path == values["path"], self._mine())
                # Due now: if this process dies, the next pass resumes the run at once.
                .values(active_run=values["id"], next_due=values["started_at"])
            ).rowcount
            if not owned:
                raise LostClaim(values["path"])
            conn.execute(insert(R).values(**values))
            self._audit.append_in_txn(conn, [event])

        await self._writes.run(run)

    async def record(
        self,
        run_id: str,
        path: str,
        run: Mapping[str, Any],
        policy: Mapping[str, Any] | None,
        events: list[AuditEvent],
    ) -> None:
        """One step's outcome: the run's and the policy's changes plus the audit events,
        in one transaction; LostClaim (nothing written) if the claim is no longer ours.
        The claim is renewed, unless the policy changes give it back (``claimed_by``)."""
        now = self._clock.now_us()
        claim = {"claimed_until": now + self.claim_us}
        if policy is not None and "claimed_by" in policy:
            claim = {}

        def write(conn: Connection) -> None:
            owned = conn.execute(
                update(P).where(P.c.path == path, self._mine()).values(**(policy or {}), **claim)
            ).rowcount
            if not owned:
                raise LostClaim(path)
            conn.execute(update(R).where(R.c.id == run_id).values(**run, updated_at=now))
            self._audit.append_in_txn(conn, events)

        await self._writes.run(write)

    async def promote_at_once(
        self,
        path: str,
        start: AuditEvent,
        write: Callable[[Connection], WriteResult],
        promoted: Callable[[int], tuple[dict[str, Any], dict[str, Any], AuditEvent]],
    ) -> int:
        """A whole rotation in one transaction, for a rotator with no external effect:
        the ``start`` event, the secret's new version (``write``), then what
        ``promoted(new version)`` gives: the run row, the policy's changes and the
        promote event. Returns the new version; LostClaim (nothing written) if the claim
        is no longer ours."""

        def run(conn: Connection) -> int:
            self._audit.append_in_txn(conn, [start])
            version = write(conn).version
            values, policy, event = promoted(version)
            owned = conn.execute(
                update(P).where(P.c.path == path, self._mine()).values(**policy)
            ).rowcount
            if not owned:
                raise LostClaim(path)
            conn.execute(insert(R).values(**values))
            self._audit.append_in_txn(conn, [event])
            return version

        return await self._writes.run(run)
