"""The rotation engine's plumbing: its identity, audit events, recorded steps, claim
renewal around slow target calls, and the sealed pending value.

``protocol.Driver`` builds the protocol on these; nothing here decides a step.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread

from keysafe.access.models import MODE_ROOT, Principal, RequestContext, request_event
from keysafe.audit.models import AuditEvent
from keysafe.audit.service import AuditLog
from keysafe.clock import Clock
from keysafe.crypto.barrier import Barrier
from keysafe.crypto.envelope import DecryptionFailed
from keysafe.crypto.keyring import Envelope
from keysafe.errors import IntegrityError, KeysafeError, NotFound, RotationFailed
from keysafe.rotation import models as m
from keysafe.rotation.rotators.base import RotationContext, Rotator, refuse_all
from keysafe.rotation.rotators.registry import Registry
from keysafe.rotation.state import RotationStore
from keysafe.rotation.targets import Target
from keysafe.secrets.service import SecretsService

__all__ = ["SYSTEM_ACTOR", "WIPE_PENDING", "Steps", "needs_retire_now", "system_context"]

log = logging.getLogger("keysafe.rotation")
SYSTEM_ACTOR = "system:rotation"
T = TypeVar("T")

WIPE_PENDING = {
    "pending_format": None,
    "pending_kek": None,
    "pending_dek": None,
    "pending_value": None,
}


def needs_retire_now(policy: m.Policy, run: m.Run) -> bool:
    """After promoting ``run``: a grace of 0 retires the previous value at once."""
    return policy.grace_seconds == 0 and run.base_version is not None


def system_context(ctx: RequestContext | None = None) -> RequestContext:
    """The rotation engine's own identity (reads and writes the secrets it rotates, and
    the admin secrets its policies name), under the caller's request id when there is one."""
    principal = Principal(SYSTEM_ACTOR, MODE_ROOT, MODE_ROOT, "", None)
    if ctx is None:
        return RequestContext(principal, "server", "rotation-" + os.urandom(6).hex())
    return RequestContext(principal, ctx.source, ctx.request_id)


class Steps:
    """What every step of the protocol needs; ``protocol.Driver`` extends it."""

    def __init__(
        self,
        store: RotationStore,
        secrets: SecretsService,
        barrier: Barrier,
        registry: Registry,
        audit: AuditLog,
        clock: Clock,
        on_failure: Callable[[str, str], object] | None,
    ) -> None:
        self._audit = audit
        self._store = store
        self._secrets = secrets
        self._barrier = barrier
        self._registry = registry
        self._clock = clock
        self.on_failure = on_failure
        # The network check rotators call before connecting (target_service.require);
        # refuses everything until the service sets it.
        self.approve: Callable[[Target, str], None] = refuse_all

    # -- helpers ---------------------------------------------------------------------------

    def _event(
        self, ctx: RequestContext, op: str, path: str, outcome: str, detail: str = ""
    ) -> AuditEvent:
        return request_event(ctx, self._clock.now_us(), op, path, outcome, detail)

    async def _record(
        self,
        run: m.Run,
        changes: dict[str, Any],
        policy: dict[str, Any] | None,
        events: list[AuditEvent],
    ) -> None:
        await self._store.record(run.id, run.path, changes, policy, events)

    async def _guarded(self, path: str, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker thread while the claim is renewed, so a slow target
        does not let the claim lapse under a live process."""
        async with anyio.create_task_group() as group:

            async def renew() -> None:
                while True:
                    await anyio.sleep(self._store.claim_us / 3_000_000)
                    await self._store.renew(path)

            group.start_soon(renew)
            error: Exception | None = None
            try:
                result = await anyio.to_thread.run_sync(fn, *args)
            except Exception as exc:  # re-raised bare, not wrapped in an ExceptionGroup
                error = exc
            finally:
                group.cancel_scope.cancel()
        if error is not None:
            raise error
        return result

    async def _current(
        self, path: str, version: int | None = None
    ) -> tuple[int | None, str | None]:
        """(version, value) of the secret now (or of ``version``); (None, None) if none."""
        try:
            value = await self._secrets.read(system_context(), path, version)
        except NotFound:
            return None, None
        return value.version, value.value

    def _context(
        self, policy: m.Policy, current: str | None, run_id: str, step: str
    ) -> RotationContext:
        def read_secret(other: str) -> str:
            # Called by rotators in a worker thread: hop onto the event loop to read.
            async def read() -> str:
                return (await self._secrets.read(system_context(), other)).value

            return anyio.from_thread.run(read)

        return RotationContext(
            path=policy.path,
            options=policy.options,
            current=current,
            read_secret=read_secret,
            grace_seconds=float(policy.grace_seconds),
            extra={"run_id": run_id, "step": step},
            approve=self.approve,
        )

    def seal_pending(self, path: str, run_id: str, value: str) -> dict[str, Any]:
        env = self._barrier.keyring().encrypt(value.encode(), m.pending_context(path, run_id))
        return {
            "pending_format": env.format,
            "pending_kek": env.kek_version,
            "pending_dek": env.wrapped_dek,
            "pending_value": env.ciphertext,
        }

    def open_pending(self, run: m.Run) -> str:
        """The pending value of ``run``; NotFound when it has none (anymore)."""
        if run.pending is None:
            raise NotFound(f"rotation {run.id} of {run.path} holds no pending value")
        fmt, kek, dek, ciphertext = run.pending
        try:
            raw = self._barrier.keyring().decrypt(
                Envelope(kek, dek, ciphertext, fmt), m.pending_context(run.path, run.id)
            )
        except DecryptionFailed:
            raise IntegrityError(
                f"the pending value of rotation {run.id} failed its integrity check"
            ) from None
        return raw.decode()

    async def _call(
        self, rotator: Rotator, method: str, policy: m.Policy, ctx: RotationContext, value: str
    ) -> None:
        """One rotator step; any failure becomes a RotationFailed without the value."""
        fn: Callable[[RotationContext, str], None] = getattr(rotator, method)
        try:
            await self._guarded(policy.path, fn, ctx, value)
        except KeysafeError:
            raise
        except Exception as exc:  # a rotator bug or a driver error: never leak its text
            log.warning(
                "rotator %s failed at %s on %s: %s",
                rotator.name,
                method,
                policy.path,
                type(exc).__name__,
            )
            raise RotationFailed(
                f"{policy.path}: the {rotator.name} rotator failed at {method} "
                f"({type(exc).__name__})"
            ) from None

    def _alert(self, path: str, message: str) -> None:
        if self.on_failure is None:
            log.warning("rotation of %s failed: %s", path, message)
            return
        try:
            self.on_failure(path, message)
        except Exception as exc:  # an alert hook must not break the engine
            log.warning("rotation failure alert for %s failed: %s", path, exc)
