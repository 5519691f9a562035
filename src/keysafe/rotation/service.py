"""Rotation of stored secrets: policies, ``rotate`` now, status, labelled reads, and the
scheduler's pass over due policies.

Who may do what: setting, deleting and running a policy needs ``rotate`` on the secret's
path; a ``command`` or ``webhook`` policy (code run on the server, the value sent to an
address the policy names) also needs ``admin`` on ``sys/rotation``; every other secret a
policy's options name (``target-secret``, ``signing-secret``) must be readable by whoever
sets it; a ``postgres`` or ``redis`` policy reaches only admin-approved targets, and an
``apikey`` policy needs ``manage-keys`` on the key's service (``admission.py``).
Status needs ``list`` on the prefix asked for. The pending value of a rotation in
flight is readable with ``rotate`` only. The root token passes everything.
Every change, denial and step is audited; the protocol itself is in ``protocol.py``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import anyio
import anyio.to_thread
import orjson
from sqlalchemy import Engine

from keysafe.access.apikeys import KeyService
from keysafe.access.authorizer import Authorizer
from keysafe.access.models import RequestContext, request_event
from keysafe.audit.models import OUTCOME_ERROR, OUTCOME_OK, AuditEvent
from keysafe.audit.service import AuditLog
from keysafe.clock import Clock
from keysafe.crypto.barrier import Barrier
from keysafe.errors import Conflict, InvalidInput, KeysafeError, NotFound, RotationFailed
from keysafe.rotation import models as m
from keysafe.rotation.admission import Admission
from keysafe.rotation.protocol import Driver
from keysafe.rotation.rotators.base import NetworkRotator
from keysafe.rotation.rotators.registry import PRIVILEGED, Registry, RotatorDeps
from keysafe.rotation.state import LostClaim, RotationStore
from keysafe.rotation.steps import needs_retire_now, system_context
from keysafe.rotation.target_service import TargetService
from keysafe.secrets.paths import validate_path, validate_prefix
from keysafe.secrets.service import SecretsService

__all__ = ["ADMIN_PATH", "PassResult", "RotationService", "build_rotation"]

log = logging.getLogger("keysafe.rotation")
ADMIN_PATH = "sys/rotation"
CLAIM_SECONDS = 15.0


@dataclass(frozen=True, slots=True)
class PassResult:
    """What one scheduler pass did."""

    claimed: int
    promoted: int
    failed: int
    retired: int


class RotationService:
    def __init__(
        self,
        engine: Engine,
        barrier: Barrier,
        secrets: SecretsService,
        audit: AuditLog,
        clock: Clock,
        authorizer: Authorizer,
        registry: Registry,
        *,
        claim_seconds: float = CLAIM_SECONDS,
        on_failure: Callable[[str, str], object] | None = None,
        targets: TargetService | None = None,
    ) -> None:
        self._audit = audit
        self._clock = clock
        self._authorizer = authorizer
        self._registry = registry
        # One owner id per service object (per server process): the claim's holder.
        self._store = RotationStore(
            engine, audit, clock, "proc_" + os.urandom(8).hex(), claim_seconds
        )
        self._driver = Driver(self._store, secrets, barrier, registry, audit, clock, on_failure)
        self.targets = targets or TargetService(engine, audit, clock, authorizer)
        self._driver.approve = self.targets.require
        self._admission = Admission(
            engine, secrets, self.targets, registry.deps.keys, audit, clock, authorizer
        )
        self._secrets = secrets
        self._pass: asyncio.Task[PassResult] | None = None

    def close(self) -> None:
        """Stop the writer thread of the rotation records."""
        self._store.close()

    @property
    def writer_alive(self) -> bool:
        """False while the rotation records' writer thread is down (health shows it)."""
        return self._store.writer_alive

    def revive_writer(self) -> bool:
        """Restart the rotation records' writer thread if it died; True when it did."""
        return self._store.revive_writer()

    def kick(self) -> bool:
        """Start a scheduler pass in the background unless one is still running; call it
        on the event loop. The server's poll loop must not wait for a pass (a slow target
        would delay its seal-state checks), hence a task. True when a pass started."""
        if self._pass is not None and not self._pass.done():
            return False
        task = asyncio.get_running_loop().create_task(self.run_due())
        task.add_done_callback(_log_pass)
        self._pass = task
        return True

    @property
    def owner(self) -> str:
        return self._store.owner

    def set_alert(self, on_failure: Callable[[str, str], object] | None) -> None:
        """The notification hook called with (path, message) when a rotation fails."""
        self._driver.on_failure = on_failure

    # -- authorisation ---------------------------------------------------------------------

    def _event(
        self, ctx: RequestContext, op: str, path: str, outcome: str, detail: str = ""
    ) -> AuditEvent:
        return request_event(ctx, self._clock.now_us(), op, path, outcome, detail)

    async def _authorize(self, ctx: RequestContext, capability: str, op: str, path: str) -> None:
        await self._authorizer.enforce(self._audit, ctx, capability, op, path)

    # -- policies --------------------------------------------------------------------------

    async def set_policy(
        self,
        ctx: RequestContext,
        path: str,
        *,
        rotator: str,
        options: dict[str, Any],
        every_seconds: int,
        grace_seconds: int,
        approve_targets: bool = False,
    ) -> dict[str, Any]:
        """Create or replace the rotation schedule of ``path`` (first run due after
        ``every_seconds``; ``keysafe rotate`` runs one now). A ``random`` policy for a
        secret that does not exist yet creates its first value at once (one rotation
        run, ``first_run`` in the answer): otherwise the secret would be missing for a
        whole interval. Raises RotationFailed if that run fails, InvalidInput for an
        unknown rotator, bad options or durations; Forbidden (audited) without the
        capabilities the policy needs, or when a rotator would connect to a target no
        admin approved (``approve_targets``: an admin of ``sys/rotation`` approves them
        here, for the policy's logins)."""
        validate_path(path)
        await self._authorize(ctx, "rotate", "rotation:set", path)
        opts = m.parse_options(options)
        if not m.MIN_EVERY_SECONDS <= every_seconds <= m.MAX_EVERY_SECONDS:
            raise InvalidInput("the interval (--every) must be between 1 minute and 5 years")
        if not 0 <= grace_seconds <= m.MAX_GRACE_SECONDS or grace_seconds >= every_seconds:
            raise InvalidInput("the grace period must be under 30 days and under the interval")
        impl = self._registry.get(rotator)
        if rotator in PRIVILEGED:
            await self._authorize(ctx, "admin", "rotation:set", ADMIN_PATH)
        for other in m.secret_options(opts):
            validate_path(other)
            if other == path:
                raise InvalidInput(
                    "a rotator's admin or signing secret cannot be the secret itself"
                )
            await self._authorize(ctx, "read", "rotation:set", other)
        await anyio.to_thread.run_sync(impl.check_options, opts)
        if isinstance(impl, NetworkRotator):
            await self._admission.check_targets(ctx, path, impl, opts, approve=approve_targets)
        if rotator == "apikey":
            opts = await self._admission.pin_key_service(ctx, path, opts)
        first = rotator == "random" and not await self._secret_exists(path, ctx)
        now = self._clock.now_us()
        values = {
            "path": path,
            "rotator": rotator,
            "options": orjson.dumps(opts, option=orjson.OPT_SORT_KEYS).decode(),
            "every_seconds": every_seconds,
            "grace_seconds": grace_seconds,
            "next_due": now + every_seconds * 1_000_000,
            "updated_by": ctx.principal.token_id[:64],
        }
        detail = f"{rotator} every {every_seconds}s grace {grace_seconds}s"
        event = self._event(ctx, "rotation:set", path, OUTCOME_OK, detail)
        await self._store.put_policy(values, event)
        first_run = await self.rotate(ctx, path) if first else None
        return {**await self.get_policy(ctx, path, audit=False), "first_run": first_run}

    async def _secret_exists(self, path: str, ctx: RequestContext) -> bool:
        """Whether ``path`` was ever written (deleted or destroyed versions count: only a
        secret that never existed gets a first value), read as the engine itself."""
        try:
            await self._secrets.metadata(system_context(ctx), path)
        except NotFound:
            return False
        return True

    async def get_policy(
        self, ctx: RequestContext, path: str, *, audit: bool = True
    ) -> dict[str, Any]:
        """One policy's status and its last runs. NotFound if there is none."""
        validate_path(path)
        await self._authorize(ctx, "rotate", "rotation:read", path)
        policy = await anyio.to_thread.run_sync(self._store.policy, path)
        if policy is None:
            raise NotFound(f"no rotation policy for {path}")
        runs = await anyio.to_thread.run_sync(self._store.runs, path)
        if audit:
            await self._audit.record(self._event(ctx, "rotation:read", path, OUTCOME_OK))
        doc = policy.document(self._clock.now_us())
        doc["runs"] = [r.document() for r in runs]
        return doc

    async def delete_policy(self, ctx: RequestContext, path: str) -> None:
        """Stop rotating ``path`` (its versions stay). Conflict while a run is in
        flight; NotFound when there is no policy."""
        validate_path(path)
        await self._authorize(ctx, "rotate", "rotation:delete", path)
        event = self._event(ctx, "rotation:delete", path, OUTCOME_OK)
        if not await self._store.delete_policy(path, event):
            if await anyio.to_thread.run_sync(self._store.policy, path) is None:
                raise NotFound(f"no rotation policy for {path}")
            raise Conflict(f"a rotation of {path} is in flight; delete the policy once it ends")

    async def status(self, ctx: RequestContext, prefix: str = "") -> list[dict[str, Any]]:
        """Every policy under ``prefix`` the caller may list: next due, last run,
        outcome, error, work in flight."""
        validate_prefix(prefix)
        await self._authorize(ctx, "list", "rotation:list", prefix)
        policies = await anyio.to_thread.run_sync(self._store.policies, prefix)
        now = self._clock.now_us()
        items = [
            p.document(now)
            for p in policies
            if self._authorizer.decide(ctx.principal, "list", p.path, ctx.source)
        ]
        await self._audit.record(self._event(ctx, "rotation:list", prefix, OUTCOME_OK))
        return items

    # -- rotate now ------------------------------------------------------------------------

    async def rotate(self, ctx: RequestContext, path: str) -> dict[str, Any]:
        """Rotate ``path`` now, out of schedule (or finish the rotation a crash left in
        flight). Returns the run. Raises NotFound (no policy), Conflict (a rotation of
        this secret is running), RotationFailed (the target refused or failed a step:
        the old value is still current and, if it could be restored, valid)."""
        validate_path(path)
        await self._authorize(ctx, "rotate", "rotation:rotate", path)
        if await anyio.to_thread.run_sync(self._store.policy, path) is None:
            raise NotFound(f"no rotation policy for {path}: set one with `keysafe rotation set`")
        claimed = await self._store.claim(path)
        if claimed is None:
            await self._audit.record(
                self._event(ctx, "rotation:rotate", path, OUTCOME_ERROR, "conflict")
            )
            raise Conflict(f"a rotation of {path} is already running; try again when it ends")
        run = await self._work(claimed, ctx, manual=True)
        if run is None:
            raise NotFound(f"no rotation policy for {path}")
        doc = run.document()
        if run.outcome != m.OUTCOME_OK:
            raise RotationFailed(run.error or f"rotation of {path} failed", run=doc)
        return doc

    async def _work(self, claimed: m.Policy, ctx: RequestContext, *, manual: bool) -> m.Run | None:
        """Everything the claimed policy needs now: resume a run in flight, retire the
        previous value when its grace is over, start a due (or manual) rotation. The
        caller holds the claim (``claimed`` is the policy read when it was taken); it is
        released here, whatever happens."""
        result: m.Run | None = None
        released = False
        path = claimed.path
        policy = claimed
        try:
            if policy.active_run is not None:
                run = await anyio.to_thread.run_sync(self._store.run, policy.active_run)
                if run is not None:
                    log.info("resuming rotation %s of %s at step %s", run.id, path, run.step)
                    return await self._driver.drive(policy, run, ctx)
            now = self._clock.now_us()
            starting = manual or policy.next_due <= now
            if policy.retire_run is not None and (starting or (policy.retire_at or 0) <= now):
                # A new rotation first retires the value two generations back.
                if not await self._driver.retire(policy, ctx):
                    if manual:
                        raise RotationFailed(
                            f"{path}: retiring the previous value failed; see rotation status"
                        )
                    return None
                reread = await anyio.to_thread.run_sync(self._store.policy, path)
                if reread is None:
                    return None
                policy = reread
            if starting:
                trigger = m.TRIGGER_MANUAL if manual else m.TRIGGER_SCHEDULE
                result = await self._driver.start(policy, ctx, trigger)
                if result.outcome == m.OUTCOME_OK:
                    if needs_retire_now(policy, result):
                        promoted = replace(policy, retire_run=result.id, failures=0)
                        await self._driver.retire(promoted, ctx)
                    else:
                        released = True  # the promotion gave the claim back
            return result
        except LostClaim:
            log.warning("lost the claim on %s to another process; it carries on", path)
            return result
        finally:
            if not released:
                await self._store.release(path)

    # -- the scheduler's pass --------------------------------------------------------------

    async def run_due(self, *, limit: int = 500, concurrency: int = 32) -> PassResult:
        """Claim and work every policy with something due (a rotation, a run to resume,
        a value to retire), ``concurrency`` at a time. Each policy is worked by exactly
        one process: the one whose conditional claim succeeded."""
        paths = await anyio.to_thread.run_sync(self._store.candidates, limit)
        counts = {"claimed": 0, "promoted": 0, "failed": 0, "retired": 0}

        async def one(policy: m.Policy) -> None:
            path = policy.path
            try:
                run = await self._work(policy, system_context(), manual=False)
            except KeysafeError as exc:
                counts["failed"] += 1
                log.warning("scheduled rotation of %s failed: %s", path, exc.detail)
                return
            if run is None:
                counts["retired"] += 1
            elif run.outcome == m.OUTCOME_OK:
                counts["promoted"] += 1
            else:
                counts["failed"] += 1

        limiter = anyio.Semaphore(concurrency)

        async def claimed_one(path: str) -> None:
            async with limiter:
                # Claimed just before its work (a claim taken long before would lapse);
                # concurrent claims share one group-committed transaction anyway.
                policy = await self._store.claim(path)
                if policy is not None:
                    counts["claimed"] += 1
                    await one(policy)

        async with anyio.create_task_group() as group:
            for path in paths:
                group.start_soon(claimed_one, path)
        return PassResult(**counts)

    # -- labelled reads --------------------------------------------------------------------

    async def read_label(self, ctx: RequestContext, path: str, label: str) -> dict[str, Any]:
        """The value of ``path`` under ``label``: ``current`` (the latest version, as a
        plain read), ``previous`` (the version the last promotion replaced; ``read``),
        ``pending`` (the unproven value of a rotation in flight; ``rotate`` only).
        Raises InvalidInput for another label, NotFound when there is no such value."""
        validate_path(path)
        if label == "current":
            doc = (await self._secrets.read(ctx, path)).as_document()
        elif label == "previous":
            version = await anyio.to_thread.run_sync(self._store.previous_version, path)
            if version is None:
                await self._secrets.read(ctx, path)  # authorises (and 404s) like any read
                raise NotFound(f"{path} has no previous version: it was never rotated")
            doc = (await self._secrets.read(ctx, path, version)).as_document()
        elif label == "pending":
            await self._authorize(ctx, "rotate", "rotation:read-pending", path)
            doc = await self._pending(ctx, path)
        else:
            raise InvalidInput(f"unknown label {label!r} (use {', '.join(m.LABELS)})")
        doc["label"] = label
        return doc

    async def _pending(self, ctx: RequestContext, path: str) -> dict[str, Any]:
        policy = await anyio.to_thread.run_sync(self._store.policy, path)
        run = None
        if policy is not None and policy.active_run is not None:
            run = await anyio.to_thread.run_sync(self._store.run, policy.active_run)
        if run is None or run.pending is None:
            await self._audit.record(
                self._event(ctx, "rotation:read-pending", path, OUTCOME_ERROR, "none")
            )
            raise NotFound(f"{path} has no pending value: no rotation is in flight")
        value = self._driver.open_pending(run)
        await self._audit.record(
            self._event(ctx, "rotation:read-pending", path, OUTCOME_OK, f"run {run.id}")
        )
        return {
            "path": path,
            "version": None,
            "value": value,
            "metadata": {"rotation": run.id, "step": run.step, "replaces": run.base_version},
        }


def _log_pass(task: asyncio.Task[PassResult]) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        log.warning("rotation scheduler pass failed: %s", error)


def build_rotation(
    engine: Engine,
    barrier: Barrier,
    secrets: SecretsService,
    audit: AuditLog,
    clock: Clock,
    authorizer: Authorizer,
    keys: KeyService,
) -> RotationService:
    """The rotation service with every registered rotator (built on first use)."""
    registry = Registry(RotatorDeps(engine=engine, clock=clock, keys=keys))
    return RotationService(engine, barrier, secrets, audit, clock, authorizer, registry)
