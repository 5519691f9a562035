"""The lease rows: insert, read, move an expiry, claim for revocation, record outcomes.

Each function is one short transaction. Claims make revocation safe with several server
processes: a row is revoked only by whoever holds its ``claimed_by`` token.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import ColumnElement, Engine, and_, or_, select, true, update

from keysafe.audit.models import AuditEvent
from keysafe.audit.service import AuditLog
from keysafe.rotation import lease_models as m
from keysafe.store.engine import read_conn, write_txn
from keysafe.store.prefix import starts_with
from keysafe.store.tables_leases import leases

CLAIM_SECONDS = 120  # a process that died mid-revocation hands its rows on after this
RETRY_FIRST_SECONDS = 5
RETRY_LONGEST_SECONDS = 300
_CHUNK = 500  # ids per UPDATE ... IN (...)


class LeaseStore:
    def __init__(self, engine: Engine, audit: AuditLog) -> None:
        self._engine = engine
        self._audit = audit
        self._postgres = engine.dialect.name == "postgresql"

    def role(self, name: str) -> m.RoleConfig:
        """The role ``name``; NotFound."""
        with read_conn(self._engine) as conn:
            return m.read_role(conn, name)

    def get(self, lease_id: str) -> m.LeaseRow | None:
        with read_conn(self._engine) as conn:
            row = conn.execute(select(leases).where(leases.c.id == lease_id)).first()
        return None if row is None else m.LeaseRow.from_row(row)

    def insert(self, issued: m.Issued, actor: str, now: int) -> None:
        with write_txn(self._engine) as conn:
            conn.execute(
                leases.insert().values(
                    id=issued.lease_id,
                    role=issued.role,
                    username=issued.username,
                    state=m.STATE_ACTIVE,
                    created_at=now,
                    created_by=actor,
                    expires_at=issued.expires_at,
                    max_expires_at=issued.max_expires_at,
                    attempts=0,
                )
            )

    def forget(self, lease_id: str) -> None:
        """Remove a lease whose login was never created."""
        with write_txn(self._engine) as conn:
            conn.execute(leases.delete().where(leases.c.id == lease_id))

    def move_expiry(self, lease_id: str, old: int | None, new: int, now: int) -> bool:
        """Set the expiry only while the lease is active, unexpired and unclaimed (and,
        when ``old`` is given, still at ``old``): atomic against the sweep."""
        where = [
            leases.c.id == lease_id,
            leases.c.state == m.STATE_ACTIVE,
            leases.c.expires_at > now,
            leases.c.claimed_by.is_(None),
        ]
        if old is not None:
            where.append(leases.c.expires_at == old)
        with write_txn(self._engine) as conn:
            done = conn.execute(update(leases).where(*where).values(expires_at=new))
        return done.rowcount == 1

    def claim(
        self, claim: str, now: int, *, where: ColumnElement[bool] | None, due_only: bool, limit: int
    ) -> list[m.LeaseRow]:
        """Atomically take up to ``limit`` live leases for revocation: with ``due_only``
        the expired ones and failed drops whose retry time has come (the sweep), else
        any live lease matching ``where`` that nobody else is revoking right now.

        The conditions are repeated on the outer UPDATE so that PostgreSQL re-checks them
        on a row another process changed meanwhile; SKIP LOCKED lets processes share
        the work. SQLite serialises writers, which makes the same statement atomic.
        """
        c = leases.c
        if due_only:
            cond = and_(
                or_(
                    and_(c.state == m.STATE_ACTIVE, c.expires_at <= now),
                    c.state == m.STATE_REVOKE_FAILED,
                ),
                or_(c.claimed_until.is_(None), c.claimed_until < now),
            )
        else:
            cond = and_(
                c.state.in_(m.LIVE_STATES),
                or_(c.claimed_by.is_(None), c.claimed_until < now),
                true() if where is None else where,
            )
        pick = select(c.id).where(cond).order_by(c.expires_at).limit(limit)
        if self._postgres:
            pick = pick.with_for_update(skip_locked=True)
        with write_txn(self._engine) as conn:
            conn.execute(
                update(leases)
                .where(c.id.in_(pick), cond)
                .values(claimed_by=claim, claimed_until=now + CLAIM_SECONDS * 1_000_000)
            )
            rows = conn.execute(select(leases).where(c.claimed_by == claim)).all()
        return [m.LeaseRow.from_row(r) for r in rows]

    def finish(
        self,
        claim: str,
        now: int,
        ended: Mapping[str, Sequence[str]],
        failed: Sequence[tuple[m.LeaseRow, str]],
        events: list[AuditEvent],
    ) -> None:
        """Record the outcome of a claimed batch with its audit events, in one
        transaction: ``ended`` maps a final state to lease ids whose login is gone;
        ``failed`` rows become ``revoke_failed`` with their reason and a retry time
        that doubles with each attempt (5 s up to 5 min)."""
        with write_txn(self._engine) as conn:
            for state, ids in ended.items():
                for start in range(0, len(ids), _CHUNK):
                    conn.execute(
                        update(leases)
                        .where(
                            leases.c.id.in_(ids[start : start + _CHUNK]),
                            leases.c.claimed_by == claim,
                        )
                        .values(
                            state=state,
                            revoked_at=now,
                            revoke_error=None,
                            claimed_by=None,
                            claimed_until=None,
                        )
                    )
            for row, error in failed:
                delay = min(RETRY_FIRST_SECONDS * 2**row.attempts, RETRY_LONGEST_SECONDS)
                conn.execute(
                    update(leases)
                    .where(leases.c.id == row.id, leases.c.claimed_by == claim)
                    .values(
                        state=m.STATE_REVOKE_FAILED,
                        revoke_error=error[:2000],
                        attempts=row.attempts + 1,
                        claimed_by=None,
                        claimed_until=now + delay * 1_000_000,
                    )
                )
            self._audit.append_in_txn(conn, events)

    def list(
        self, prefix: str = "", state: str | None = None, limit: int = 1000
    ) -> list[m.LeaseRow]:
        """Leases whose role starts with ``prefix``, newest first (never a password)."""
        query = select(leases).where(starts_with(leases.c.role, prefix))
        if state:
            query = query.where(leases.c.state == state)
        query = query.order_by(leases.c.created_at.desc()).limit(limit)
        with read_conn(self._engine) as conn:
            return [m.LeaseRow.from_row(r) for r in conn.execute(query)]
