"""Leases on temporary database logins: issue, renew (capped at the maximum), revoke,
revoke by prefix, list, and the sweep that drops the logins of expired leases.

A lease row is written before its login is created, so a crash between the two leaves a
row whose (missing) login the sweep "drops" at expiry: no login is ever untracked. Every
revocation, explicit or by the sweep, first claims its rows with one conditional UPDATE
(``claimed_by``), so with several server processes each login is dropped by one of them.
A drop that fails (target down) leaves the lease ``revoke_failed``; the sweep retries it
with a growing delay and ``lease list`` shows why.

Passwords are never stored, logged or audited: the caller sees each one once.
"""

from __future__ import annotations

import datetime as dt
import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anyio.to_thread
from sqlalchemy import ColumnElement, Engine

from keysafe.access.authorizer import Authorizer
from keysafe.access.models import MODE_ROOT, Deny, Principal, RequestContext, denial, request_event
from keysafe.audit.models import OUTCOME_DENIED, OUTCOME_ERROR, OUTCOME_OK, AuditEvent
from keysafe.audit.service import AuditLog
from keysafe.clock import Clock
from keysafe.errors import Conflict, InvalidInput, KeysafeError, NotFound, RotationFailed
from keysafe.rotation import lease_models as m
from keysafe.rotation.dynamic import PostgresTarget, Target, new_password, username_for
from keysafe.rotation.lease_store import LeaseStore
from keysafe.rotation.target_service import ANY_LOGIN, TargetService
from keysafe.rotation.targets import PgConn, parse_postgres
from keysafe.secrets.service import SecretsService
from keysafe.store.prefix import starts_with
from keysafe.store.tables_leases import leases
from keysafe.timefmt import iso_us

__all__ = ["LeaseService", "SweepResult"]

SYSTEM_ACTOR = "system:leases"
SWEEP_BATCH = 500


@dataclass(frozen=True, slots=True)
class SweepResult:
    revoked: int
    failed: int


def _dt(us: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(us / 1_000_000, tz=dt.UTC)


class LeaseService:
    def __init__(
        self,
        engine: Engine,
        secrets: SecretsService,
        audit: AuditLog,
        clock: Clock,
        authorizer: Authorizer,
        *,
        connect: Callable[[str], Target] = PostgresTarget,
    ) -> None:
        self._engine = engine
        self._secrets = secrets
        self._audit = audit
        self._clock = clock
        self._authorizer = authorizer
        self._connect = connect
        self._store = LeaseStore(engine, audit)
        self._approvals = TargetService(engine, audit, clock, authorizer)

    # -- helpers ---------------------------------------------------------------------------

    def _event(
        self, ctx: RequestContext, op: str, path: str, outcome: str, detail: str = ""
    ) -> AuditEvent:
        return request_event(ctx, self._clock.now_us(), op, path, outcome, detail)

    async def _authorize(self, ctx: RequestContext, capability: str, op: str, path: str) -> None:
        await self._authorizer.enforce(self._audit, ctx, capability, op, path)

    def _system(self, ctx: RequestContext | None) -> RequestContext:
        """The lease engine's own identity for reading admin connection secrets: the
        caller may issue logins without being able to read the admin URL (as in Vault).
        Audited as ``system:leases`` under the caller's request id."""
        principal = Principal(SYSTEM_ACTOR, MODE_ROOT, MODE_ROOT, "", None)
        if ctx is None:
            return RequestContext(principal, "server", "lease-sweep")
        return RequestContext(principal, ctx.source, ctx.request_id)

    async def _target(self, ctx: RequestContext, role: m.RoleConfig) -> Target:
        return await self._open(await self._connection(ctx, role))

    async def _connection(self, ctx: RequestContext, role: m.RoleConfig) -> PgConn:
        """The role's admin connection, parsed (RotationFailed when missing or unusable)."""
        try:
            url = (await self._secrets.read(ctx, role.connection_secret)).value
        except NotFound:
            raise RotationFailed(
                f"role {role.name}: its connection secret {role.connection_secret} is missing"
            ) from None
        try:
            conn = parse_postgres(url)
        except InvalidInput as exc:
            raise RotationFailed(
                f"role {role.name}: its connection secret is unusable: {exc.detail}"
            ) from None
        return conn

    async def _open(self, conn: PgConn) -> Target:
        # Reaching the network is an admin decision: only an approved target, and only
        # one approved for any login (these logins are made up at each issue).
        await anyio.to_thread.run_sync(self._approvals.require, conn.target, ANY_LOGIN)
        return await anyio.to_thread.run_sync(self._connect, conn.conninfo())

    def role(self, name: str) -> m.RoleConfig:
        """The role ``name``; NotFound."""
        return self._store.role(name)

    # -- issue -----------------------------------------------------------------------------

    async def issue(self, ctx: RequestContext, name: str, ttl: int | None = None) -> m.Issued:
        """A new login for role ``name`` valid for ``ttl`` seconds (default: the role's,
        capped at its max, with a warning). Needs ``read`` on ``creds/<name>``.
        Raises NotFound, Forbidden, InvalidInput, RotationFailed (target down, wrong admin
        secret, failing grant: nothing is left behind)."""
        m.validate_role_name(name)
        path = m.CREDS_PREFIX + name
        await self._authorize(ctx, "read", "creds:issue", path)
        if ttl is not None and ttl <= 0:
            raise InvalidInput("the TTL must be positive")
        try:
            role = await anyio.to_thread.run_sync(self._store.role, name)
            conn = await self._connection(self._system(ctx), role)
            target = await self._open(conn)
        except KeysafeError as exc:
            await self._audit.record(self._event(ctx, "creds:issue", path, OUTCOME_ERROR, exc.code))
            raise
        warnings: list[str] = []
        granted = role.default_ttl if ttl is None else ttl
        if granted > role.max_ttl:
            warnings.append(
                f"requested TTL {granted} s is above the role's max TTL; capped at {role.max_ttl} s"
            )
            granted = role.max_ttl
        now = self._clock.now_us()
        issued = m.Issued(
            lease_id="lease_" + os.urandom(10).hex(),
            role=name,
            username=username_for(name),
            password=new_password(),
            expires_at=now + granted * 1_000_000,
            max_expires_at=now + role.max_ttl * 1_000_000,
            ttl=granted,
            warnings=tuple(warnings),
            # Where the login works (never the admin's user or password): PGHOST & co.
            host=conn.target.host,
            port=conn.target.port,
            database=conn.target.database,
        )
        await anyio.to_thread.run_sync(self._store.insert, issued, ctx.principal.token_id, now)
        try:
            await anyio.to_thread.run_sync(
                target.create,
                issued.username,
                issued.password,
                _dt(issued.expires_at),
                role.grants,
            )
        except KeysafeError as exc:
            # CREATE ROLE and the grants ran in one transaction: nothing exists.
            await anyio.to_thread.run_sync(self._store.forget, issued.lease_id)
            await self._audit.record(
                self._event(ctx, "creds:issue", path, OUTCOME_ERROR, exc.detail)
            )
            raise
        detail = f"lease {issued.lease_id} login {issued.username} ttl {granted}s"
        try:
            await self._audit.record(self._event(ctx, "creds:issue", path, OUTCOME_OK, detail))
        except KeysafeError:
            # Fail closed: a login nobody audited must not exist.
            await anyio.to_thread.run_sync(target.drop, [issued.username])
            await anyio.to_thread.run_sync(self._store.forget, issued.lease_id)
            raise
        return issued

    # -- authorisation of a lease by id ----------------------------------------------------

    async def _lease_for(self, ctx: RequestContext, lease_id: str, op: str) -> m.LeaseRow:
        """The lease, if the caller may manage it: ``read`` on its role's ``creds/`` path
        (whoever may issue may renew and revoke) or ``admin`` on ``sys/lease``. An
        unknown id is refused like a forbidden one unless the caller is a lease admin."""
        lease = await anyio.to_thread.run_sync(self._store.get, lease_id)
        admin = self._authorizer.decide(ctx.principal, "admin", m.LEASE_ADMIN_PATH, ctx.source)
        if lease is None:
            if isinstance(admin, Deny):
                await self._audit.record(
                    self._event(ctx, op, lease_id, OUTCOME_DENIED, admin.reason)
                )
                raise denial(admin)
            raise NotFound(f"no lease {lease_id}")
        if isinstance(admin, Deny):
            await self._authorize(ctx, "read", op, m.CREDS_PREFIX + lease.role)
        return lease

    # -- renew -----------------------------------------------------------------------------

    async def renew(
        self, ctx: RequestContext, lease_id: str, increment: int | None = None
    ) -> dict[str, object]:
        """Extend a live lease to ``increment`` seconds from now (default: the role's TTL),
        never past its maximum: past it the renewal is capped and says so (``capped``,
        ``warnings``). Conflict for a lease that is no longer active."""
        if increment is not None and increment <= 0:
            raise InvalidInput("the increment must be a positive number of seconds")
        lease = await self._lease_for(ctx, lease_id, "lease:renew")
        path = m.CREDS_PREFIX + lease.role
        now = self._clock.now_us()
        if lease.state != m.STATE_ACTIVE or lease.expires_at <= now:
            state = m.STATE_EXPIRED if lease.state == m.STATE_ACTIVE else lease.state
            raise Conflict(
                f"lease {lease_id} is {state}: it cannot be renewed; issue new credentials"
            )
        role = await anyio.to_thread.run_sync(self.role, lease.role)
        new, capped = m.cap_expiry(now, increment or role.default_ttl, lease.max_expires_at)
        if not await anyio.to_thread.run_sync(self._store.move_expiry, lease_id, None, new, now):
            raise Conflict(f"lease {lease_id} expired or is being revoked: issue new credentials")
        try:
            target = await self._target(self._system(ctx), role)
            await anyio.to_thread.run_sync(target.extend, lease.username, _dt(new))
        except KeysafeError as exc:
            await anyio.to_thread.run_sync(
                self._store.move_expiry, lease_id, new, lease.expires_at, now
            )
            await self._audit.record(
                self._event(ctx, "lease:renew", path, OUTCOME_ERROR, exc.detail)
            )
            raise
        warnings = []
        if capped:
            warnings.append(
                f"lease {lease_id} reached its maximum TTL: it ends at {iso_us(new)} and "
                "cannot be renewed past that"
            )
        detail = f"lease {lease_id} until {iso_us(new)}" + (" (capped at max)" if capped else "")
        await self._audit.record(self._event(ctx, "lease:renew", path, OUTCOME_OK, detail))
        return {
            "lease_id": lease_id,
            "expires_at": iso_us(new),
            "max_expires_at": iso_us(lease.max_expires_at),
            "ttl": max(0, (new - now) // 1_000_000),
            "capped": capped,
            "warnings": warnings,
        }

    # -- revoke ----------------------------------------------------------------------------

    async def revoke(self, ctx: RequestContext, lease_id: str) -> dict[str, object]:
        """Drop the lease's login now. Revoking a lease that already ended answers its
        state (``already``: true). RotationFailed when the target refused: the lease is
        then ``revoke_failed`` and the sweep retries it."""
        lease = await self._lease_for(ctx, lease_id, "lease:revoke")
        path = m.CREDS_PREFIX + lease.role
        if lease.state not in m.LIVE_STATES:
            await self._audit.record(
                self._event(
                    ctx, "lease:revoke", path, OUTCOME_OK, f"lease {lease_id} already {lease.state}"
                )
            )
            return {**lease.to_json(), "already": True}
        claim = "rv_" + os.urandom(8).hex()
        rows = await anyio.to_thread.run_sync(self._claim_now, claim, leases.c.id == lease_id)
        if not rows:
            current = await anyio.to_thread.run_sync(self._store.get, lease_id)
            if current is not None and current.state not in m.LIVE_STATES:
                return {**current.to_json(), "already": True}
            raise Conflict(f"lease {lease_id} is being revoked by another server process; retry")
        _, failed = await self._revoke_claimed(rows, claim, ctx)
        current = await anyio.to_thread.run_sync(self._store.get, lease_id)
        assert current is not None
        if failed:
            raise RotationFailed(
                f"lease {lease_id}: {current.revoke_error}; kept as revoke_failed and retried"
            )
        return {**current.to_json(), "already": False}

    async def revoke_prefix(self, ctx: RequestContext, prefix: str) -> dict[str, object]:
        """Drop every live login whose role name starts with ``prefix`` (incident
        response). The caller's rights (admin on ``sys/lease``) are checked by the route."""
        if not prefix.strip():
            raise InvalidInput("give a non-empty role prefix, e.g. postgres/")
        claim = "rp_" + os.urandom(8).hex()
        where = starts_with(leases.c.role, prefix)
        revoked = failed = 0
        while rows := await anyio.to_thread.run_sync(self._claim_now, claim, where):
            done, bad = await self._revoke_claimed(rows, claim, ctx)
            revoked, failed = revoked + done, failed + bad
        detail = f"prefix {prefix!r}: {revoked} revoked, {failed} failed"
        await self._audit.record(
            self._event(ctx, "lease:revoke-prefix", m.CREDS_PREFIX + prefix, OUTCOME_OK, detail)
        )
        return {"prefix": prefix, "revoked": revoked, "failed": failed}

    # -- sweep -----------------------------------------------------------------------------

    async def sweep(self, *, batch: int = SWEEP_BATCH, max_batches: int = 100) -> SweepResult:
        """Drop the logins of expired leases (and retry failed drops that are due), in
        batches of ``batch``; safe to run in every server process at once."""
        claim = "sw_" + os.urandom(8).hex()
        revoked = failed = 0
        for _ in range(max_batches):
            rows = await anyio.to_thread.run_sync(
                lambda: self._store.claim(
                    claim, self._clock.now_us(), where=None, due_only=True, limit=batch
                )
            )
            if not rows:
                break
            done, bad = await self._revoke_claimed(rows, claim, None)
            revoked, failed = revoked + done, failed + bad
        return SweepResult(revoked, failed)

    async def _revoke_claimed(
        self, rows: Sequence[m.LeaseRow], claim: str, ctx: RequestContext | None
    ) -> tuple[int, int]:
        """Drop the claimed rows' logins, role by role, and record each outcome."""
        system = self._system(ctx)
        by_role: dict[str, list[m.LeaseRow]] = defaultdict(list)
        for row in rows:
            by_role[row.role].append(row)
        errors: dict[str, str] = {}
        for role_name, group in by_role.items():
            try:
                role = await anyio.to_thread.run_sync(self.role, role_name)
                target = await self._target(system, role)
                failures = await anyio.to_thread.run_sync(target.drop, [r.username for r in group])
            except KeysafeError as exc:
                failures = {r.username: exc.detail for r in group}
            errors.update({r.id: failures[r.username] for r in group if r.username in failures})
        await anyio.to_thread.run_sync(self._record, rows, claim, errors, ctx)
        return len(rows) - len(errors), len(errors)

    def _claim_now(self, claim: str, where: ColumnElement[bool]) -> list[m.LeaseRow]:
        now = self._clock.now_us()
        return self._store.claim(claim, now, where=where, due_only=False, limit=SWEEP_BATCH)

    def _record(
        self,
        rows: Sequence[m.LeaseRow],
        claim: str,
        errors: dict[str, str],
        ctx: RequestContext | None,
    ) -> None:
        """Each row's new state and audit event: ``expired`` when the sweep ended it
        after its expiry, ``revoked`` otherwise, ``revoke_failed`` with the reason."""
        now = self._clock.now_us()
        actor = ctx or self._system(None)
        events: list[AuditEvent] = []
        ended: dict[str, list[str]] = defaultdict(list)
        failed: list[tuple[m.LeaseRow, str]] = []
        for row in rows:
            path = m.CREDS_PREFIX + row.role
            login = f"lease {row.id} login {row.username}"
            if row.id in errors:
                failed.append((row, errors[row.id]))
                events.append(
                    self._event(
                        actor, "lease:revoke", path, OUTCOME_ERROR, f"{login}: {errors[row.id]}"
                    )
                )
                continue
            expired = ctx is None and row.expires_at <= now
            ended[m.STATE_EXPIRED if expired else m.STATE_REVOKED].append(row.id)
            op = "lease:expire" if expired else "lease:revoke"
            events.append(self._event(actor, op, path, OUTCOME_OK, f"{login} dropped"))
        self._store.finish(claim, now, ended, failed, events)

    # -- list ------------------------------------------------------------------------------

    def list_leases(
        self, prefix: str = "", state: str | None = None, limit: int = 1000
    ) -> list[m.LeaseRow]:
        """Leases whose role starts with ``prefix``, newest first (never a password)."""
        return self._store.list(prefix, state, limit)
