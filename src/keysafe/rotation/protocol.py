"""The rotation protocol: generate, apply, verify, promote, then retire after the grace.

A run moves through steps that are each recorded (with their audit event, in one
transaction) before the next starts, so that whoever holds the policy's claim next,
this process after a restart or another one, resumes exactly where it stopped:

    generated --apply--> applied --verify--> verified --promote--> promoted --retire--> retired
        \\__________________ failure: restore the old value (apply(old)) ___> failed
                                              (restore failed: rolling_back, retried)

The pending value lives sealed in the run row (never among the secret's versions)
until ``promote`` writes it as a new version through SecretsService with check-and-set
on the version it replaces; a promote interrupted after that write is recognised on
resume (the current value equals the pending one) instead of being written twice.
A failed test never promotes, and the old value stays current in keysafe and valid on
the target until a new one is proven.
"""

from __future__ import annotations

import hmac
import os
from dataclasses import replace
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
from sqlalchemy import Connection

from keysafe.access.models import RequestContext
from keysafe.audit.models import OUTCOME_ERROR, OUTCOME_OK, AuditEvent
from keysafe.errors import CasMismatch, KeysafeError, RotationFailed
from keysafe.rotation import models as m
from keysafe.rotation.rotators.base import Rotator
from keysafe.rotation.state import LostClaim
from keysafe.rotation.steps import WIPE_PENDING, Steps, needs_retire_now, system_context
from keysafe.secrets.models import WriteResult

__all__ = ["Driver"]


class Driver(Steps):
    """Runs one policy's work while its caller holds the policy's claim."""

    # -- a new run -------------------------------------------------------------------------

    async def start(self, policy: m.Policy, ctx: RequestContext, trigger: str) -> m.Run:
        """Generate a pending value and record the run (step ``generated``); then drive it."""
        rotator = self._registry.get(policy.rotator)
        run_id = "rot_" + os.urandom(8).hex()
        external = getattr(rotator, "external", True)
        # An internal rotator is given no current value (base.py): nothing is read.
        base, current = await self._current(policy.path) if external else (None, None)
        rctx = self._context(policy, current, run_id, "generate")
        try:
            if external:
                value = await anyio.to_thread.run_sync(rotator.generate, rctx)
            else:  # quick and pure (base.py): no thread hop
                value = rotator.generate(rctx)
        except Exception as exc:
            detail = exc.detail if isinstance(exc, KeysafeError) else type(exc).__name__
            message = f"{policy.path}: cannot generate a new value: {detail}"
            await self._failed_before_run(policy, ctx, message)
            raise RotationFailed(message) from None
        if not external:
            return await self._rotate_at_once(policy, ctx, trigger, run_id, value)
        now = self._clock.now_us()
        run = self._new_run(policy, ctx, trigger, run_id, now, m.STEP_GENERATED, base)
        values = {**_row(run), **self.seal_pending(policy.path, run_id, value)}
        detail = f"run {run_id} {policy.rotator} ({trigger}) from version {base}"
        event = self._event(ctx, "rotation:start", policy.path, OUTCOME_OK, detail)
        await self._store.start(values, event)
        return await self.drive(policy, run, ctx, known=(current, value))

    async def _rotate_at_once(
        self, policy: m.Policy, ctx: RequestContext, trigger: str, run_id: str, value: str
    ) -> m.Run:
        """A rotator with no external effect (``random``): nothing to apply, verify or
        recover, so the whole run is one transaction, promoted or not at all. The new
        value becomes the version after whatever is current when it commits: with no
        target to keep in step, a write that lands first is simply superseded."""
        system = system_context(ctx)
        now = self._clock.now_us()
        run = self._new_run(policy, ctx, trigger, run_id, now, m.STEP_PROMOTED, None)
        run = replace(run, finished_at=now, outcome=m.OUTCOME_OK)
        start = self._event(
            ctx, "rotation:start", policy.path, OUTCOME_OK,
            f"run {run_id} {policy.rotator} ({trigger})",
        )  # fmt: skip

        def write(conn: Connection) -> WriteResult:
            return self._secrets.write_in_txn(conn, system, policy.path, value, None)

        def promoted(version: int) -> tuple[dict[str, Any], dict[str, Any], AuditEvent]:
            base = version - 1 or None
            values = _row(replace(run, base_version=base, new_version=version))
            changes = self._promoted_policy(policy, replace(run, base_version=base), now)
            detail = f"run {run_id} version {version} (previous {base})"
            event = self._event(ctx, "rotation:promote", policy.path, OUTCOME_OK, detail)
            return values, changes, event

        version = await self._store.promote_at_once(policy.path, start, write, promoted)
        return replace(run, base_version=version - 1 or None, new_version=version)

    @staticmethod
    def _new_run(
        policy: m.Policy,
        ctx: RequestContext,
        trigger: str,
        run_id: str,
        now: int,
        step: str,
        base: int | None,
    ) -> m.Run:
        return m.Run(
            id=run_id,
            path=policy.path,
            rotator=policy.rotator,
            trigger=trigger,
            actor=ctx.principal.token_id[:64],
            step=step,
            base_version=base,
            new_version=None,
            pending=None,
            started_at=now,
            finished_at=None,
            outcome=None,
            error=None,
        )

    def _promoted_policy(self, policy: m.Policy, run: m.Run, now: int) -> dict[str, Any]:
        """The policy's changes when ``run`` is promoted at ``now``: the previous value
        is retired after the grace, the next rotation due a period later, and the claim
        given back unless the previous value must be retired at once (still claimed)."""
        changes: dict[str, Any] = {
            "active_run": None,
            "retire_run": run.id if run.base_version else None,
            "retire_at": now + policy.grace_seconds * 1_000_000 if run.base_version else None,
            "next_due": now + policy.every_seconds * 1_000_000,
            "failures": 0,
            "last_run": run.id,
            "last_outcome": m.OUTCOME_OK,
            "last_error": None,
            "last_run_at": now,
        }
        if not needs_retire_now(policy, run):
            changes.update(claimed_by=None, claimed_until=None)
        return changes

    async def _failed_before_run(self, policy: m.Policy, ctx: RequestContext, message: str) -> None:
        failures = policy.failures + 1
        now = self._clock.now_us()
        event = self._event(ctx, "rotation:fail", policy.path, OUTCOME_ERROR, message)
        changes = {
            "failures": failures,
            "next_due": now + m.backoff_seconds(failures, policy.every_seconds) * 1_000_000,
            "last_outcome": m.OUTCOME_FAILED,
            "last_error": message[:2000],
            "last_run_at": now,
        }
        await self._store.release(policy.path, changes)
        await self._audit.record(event)
        self._alert(policy.path, message)

    # -- driving a run ---------------------------------------------------------------------

    async def drive(
        self,
        policy: m.Policy,
        run: m.Run,
        ctx: RequestContext,
        *,
        known: tuple[str | None, str] | None = None,
    ) -> m.Run:
        """Take ``run`` from its recorded step to promoted (or failed); returns it as it
        ends. ``known`` is (current, pending) when the caller has just read and generated
        them. Raises LostClaim when another process took the policy over."""
        rotator = self._registry.get(run.rotator)
        if known is not None:
            current, pending = known
        else:
            pending = self.open_pending(run)
            current = None
            if run.base_version is not None:
                _, current = await self._current(run.path, run.base_version)
        step = run.step
        if step == m.STEP_ROLLING_BACK:
            return await self._fail(policy, run, ctx, rotator, current, run.error or "", True)
        try:
            if step == m.STEP_GENERATED:
                await self._call(
                    rotator,
                    "apply",
                    policy,
                    self._context(policy, current, run.id, "apply"),
                    pending,
                )
                step = await self._step(run, ctx, m.STEP_APPLIED, "rotation:apply")
            if step == m.STEP_APPLIED:
                await self._call(
                    rotator,
                    "verify",
                    policy,
                    self._context(policy, current, run.id, "verify"),
                    pending,
                )
                step = await self._step(run, ctx, m.STEP_VERIFIED, "rotation:verify")
        except LostClaim:
            raise
        except KeysafeError as exc:
            return await self._fail(policy, run, ctx, rotator, current, exc.detail, True)
        return await self._promote(policy, run, ctx, rotator, current, pending)

    async def _step(self, run: m.Run, ctx: RequestContext, step: str, op: str) -> str:
        event = self._event(ctx, op, run.path, OUTCOME_OK, f"run {run.id}")
        await self._record(run, {"step": step}, None, [event])
        return step

    async def _promote(
        self,
        policy: m.Policy,
        run: m.Run,
        ctx: RequestContext,
        rotator: Rotator,
        current: str | None,
        pending: str,
    ) -> m.Run:
        system = system_context(ctx)
        try:
            written = await self._secrets.write(
                system, run.path, pending, cas=run.base_version or 0
            )
            new_version = written.version
        except CasMismatch:
            # Either an earlier attempt of this run wrote it and died before recording
            # the step, or someone wrote the secret meanwhile.
            version, now_value = await self._current(run.path)
            if (
                version is None
                or now_value is None
                or not hmac.compare_digest(now_value.encode(), pending.encode())
            ):
                message = (
                    f"{run.path}: the secret changed during the rotation (now version "
                    f"{version}); the new value was not promoted"
                )
                return await self._fail(policy, run, ctx, rotator, current, message, True)
            new_version = version
        now = self._clock.now_us()
        changes = {
            "step": m.STEP_PROMOTED,
            "new_version": new_version,
            "finished_at": now,
            "outcome": m.OUTCOME_OK,
            "error": None,
            **WIPE_PENDING,
        }
        policy_changes = self._promoted_policy(policy, run, now)
        detail = f"run {run.id} version {new_version} (previous {run.base_version})"
        event = self._event(ctx, "rotation:promote", run.path, OUTCOME_OK, detail)
        await self._record(run, changes, policy_changes, [event])
        return replace(
            run,
            step=m.STEP_PROMOTED,
            new_version=new_version,
            pending=None,
            finished_at=now,
            outcome=m.OUTCOME_OK,
            error=None,
        )

    async def _fail(
        self,
        policy: m.Policy,
        run: m.Run,
        ctx: RequestContext,
        rotator: Rotator,
        current: str | None,
        message: str,
        restore: bool,
    ) -> m.Run:
        """End ``run`` as failed after restoring the old value on the target
        (``apply(old)``); if the restore itself fails the run stays in flight
        (``rolling_back``, pending value kept) and is retried with backoff."""
        restored = True
        events: list[AuditEvent] = []
        if restore and current is not None:
            try:
                rctx = self._context(policy, current, run.id, "rollback")
                await self._call(rotator, "apply", policy, rctx, current)
                events.append(
                    self._event(ctx, "rotation:rollback", run.path, OUTCOME_OK, f"run {run.id}")
                )
            except KeysafeError as exc:
                restored = False
                events.append(
                    self._event(ctx, "rotation:rollback", run.path, OUTCOME_ERROR, exc.detail)
                )
                if "restoring" not in message:
                    message = f"{message}; restoring the previous value failed: {exc.detail}"
        now = self._clock.now_us()
        failures = policy.failures + 1
        policy_changes: dict[str, Any] = {
            "failures": failures,
            "next_due": now + m.backoff_seconds(failures, policy.every_seconds) * 1_000_000,
            "last_run": run.id,
            "last_error": message[:2000],
            "last_run_at": now,
        }
        if restored:
            outcome = m.OUTCOME_ROLLED_BACK if restore and current is not None else m.OUTCOME_FAILED
            changes: dict[str, Any] = {
                "step": m.STEP_FAILED,
                "outcome": outcome,
                "finished_at": now,
                "error": message[:2000],
                **WIPE_PENDING,
            }
            policy_changes.update(active_run=None, last_outcome=outcome)
        else:
            changes = {"step": m.STEP_ROLLING_BACK, "error": message[:2000]}
            policy_changes["last_outcome"] = m.STEP_ROLLING_BACK
        events.append(
            self._event(ctx, "rotation:fail", run.path, OUTCOME_ERROR, f"run {run.id}: {message}")
        )
        await self._record(run, changes, policy_changes, events)
        self._alert(run.path, message)
        return replace(
            run,
            step=changes["step"],
            outcome=changes.get("outcome"),
            finished_at=changes.get("finished_at"),
            error=message[:2000],
        )

    # -- retirement ------------------------------------------------------------------------

    async def retire(self, policy: m.Policy, ctx: RequestContext) -> bool:
        """Stop the target accepting the value the last promotion made previous; True
        when done (or nothing to do), False after a recorded, alerted failure."""
        run = self._store.run(policy.retire_run) if policy.retire_run else None
        if run is None:
            return True
        rotator = self._registry.get(run.rotator)
        external = getattr(rotator, "external", True)
        current = old = None
        if external:  # else nothing outside keysafe holds the old value: no reads
            _, current = await self._current(run.path)
            try:
                _, old = await self._current(run.path, run.base_version)
            except KeysafeError:  # destroyed or pruned: nothing left to name on the target
                old = None
        try:
            if old is not None:
                rctx = self._context(policy, current, run.id, "retire")
                await self._call(rotator, "retire", policy, rctx, old)
        except KeysafeError as exc:
            now = self._clock.now_us()
            failures = policy.failures + 1
            message = f"retiring the previous value failed: {exc.detail}"
            event = self._event(
                ctx, "rotation:retire", run.path, OUTCOME_ERROR, f"run {run.id}: {message}"
            )
            await self._record(
                run,
                {},
                {
                    "failures": failures,
                    "retire_at": now
                    + m.backoff_seconds(failures, policy.every_seconds) * 1_000_000,
                    "last_error": message[:2000],
                },
                [event],
            )
            self._alert(run.path, message)
            return False
        note = f"run {run.id} version {run.base_version}"
        if external and old is None:
            note += " (no longer stored: nothing to retire)"
        event = self._event(ctx, "rotation:retire", run.path, OUTCOME_OK, note)
        await self._record(
            run, {"step": m.STEP_RETIRED}, {"retire_run": None, "retire_at": None}, [event]
        )
        return True


def _row(run: m.Run) -> dict[str, Any]:
    """The ``rotation_runs`` columns of a run being inserted (no pending value)."""
    return {
        "id": run.id,
        "path": run.path,
        "rotator": run.rotator,
        "trigger": run.trigger,
        "actor": run.actor,
        "step": run.step,
        "base_version": run.base_version,
        "new_version": run.new_version,
        "started_at": run.started_at,
        "updated_at": run.started_at,
        "finished_at": run.finished_at,
        "outcome": run.outcome,
        "error": run.error,
    }
