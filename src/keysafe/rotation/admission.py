"""What a rotation policy must pass before it is stored, beyond ``rotate`` on its path.

- A rotator that connects somewhere (``NetworkRotator``: postgres, redis) reaches only
  targets an admin approved (``target_service.py``). The targets are parsed from the
  admin secret the policy names, read as the caller; the same check runs again before
  every connection, since that secret may be rewritten later.
- An ``apikey`` policy rolls a service's key: whoever sets it needs ``manage-keys`` on
  that service (``sys/key/<service>``), the key must be live, and the policy is pinned
  to the service (option ``service``) so that a key of another service written into
  the secret later is refused at run time.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from sqlalchemy import Engine

from keysafe.access.apikeys import KeyService
from keysafe.access.authorizer import Authorizer
from keysafe.access.models import RequestContext, request_event
from keysafe.audit.models import OUTCOME_DENIED
from keysafe.audit.service import AuditLog
from keysafe.clock import Clock
from keysafe.errors import Forbidden, InvalidInput, NotFound, RotationFailed
from keysafe.rotation import models as m
from keysafe.rotation.rotators.apikey import key_refusal
from keysafe.rotation.rotators.base import NetworkRotator, RotationContext
from keysafe.rotation.steps import system_context
from keysafe.rotation.target_service import ADMIN_PATH, TargetService
from keysafe.rotation.targets import Target
from keysafe.secrets.service import SecretsService
from keysafe.store.engine import read_conn

__all__ = ["Admission"]


class Admission:
    def __init__(
        self,
        engine: Engine,
        secrets: SecretsService,
        targets: TargetService,
        keys: KeyService,
        audit: AuditLog,
        clock: Clock,
        authorizer: Authorizer,
    ) -> None:
        self._engine = engine
        self._secrets = secrets
        self._targets = targets
        self._keys = keys
        self._audit = audit
        self._clock = clock
        self._authorizer = authorizer

    async def _deny(self, ctx: RequestContext, path: str, reason: str) -> Forbidden:
        event = request_event(
            ctx, self._clock.now_us(), "rotation:set", path, OUTCOME_DENIED, reason
        )
        await self._audit.record(event)
        return Forbidden(reason)

    async def check_targets(
        self,
        ctx: RequestContext,
        path: str,
        impl: NetworkRotator,
        opts: dict[str, str],
        *,
        approve: bool,
    ) -> None:
        """Forbidden (audited) unless every target the policy reaches is approved; with
        ``approve``, an admin of ``sys/rotation`` approves them (for the policy's logins)
        instead. InvalidInput when the admin secret is missing or unusable."""
        values: dict[str, str] = {}
        for other in m.secret_options(opts):
            try:
                values[other] = (await self._secrets.read(ctx, other)).value
            except NotFound:
                raise InvalidInput(
                    f"the secret {other} does not exist: write the admin URL there first"
                ) from None

        def read(other: str) -> str:
            return values[other]

        rctx = RotationContext(path=path, options=opts, current=None, read_secret=read)
        try:
            pairs = await anyio.to_thread.run_sync(impl.targets, rctx)
        except RotationFailed as exc:
            raise InvalidInput(exc.detail) from None
        refused: list[tuple[Target, str, str]] = []
        for target, login in pairs:
            reason = await anyio.to_thread.run_sync(self._targets.refusal, target, login)
            if reason is not None:
                refused.append((target, login, reason))
        if not refused:
            return
        if approve:
            await self._authorizer.enforce(
                self._audit, ctx, "admin", "rotation:target-add", ADMIN_PATH
            )
            for target, login, _ in refused:
                await self._targets.approve(ctx, target, [login], merge=True)
            return
        raise await self._deny(
            ctx, path, f"{refused[0][2]}: an admin approves it (keysafe rotation target add)"
        )

    async def pin_key_service(
        self, ctx: RequestContext, path: str, opts: dict[str, str]
    ) -> dict[str, str]:
        """The apikey policy's options, pinned to the service of the live key ``path``
        holds now. Forbidden (audited) without ``manage-keys`` on that service;
        InvalidInput when the secret holds no live key."""
        try:
            value = (await self._secrets.read(system_context(ctx), path)).value
        except NotFound:
            raise InvalidInput(
                f"{path} holds no API key yet: write the key there before setting the policy"
            ) from None

        def find() -> tuple[dict[str, Any] | None, str | None]:
            with read_conn(self._engine) as conn:
                record = self._keys.find(value.strip(), conn)
            if record is None:
                return None, None
            try:
                return record, self._keys.service_of(record["id"])
            except NotFound:  # a person's key, not a service's: no rotator rolls it
                return record, None

        record, service = await anyio.to_thread.run_sync(find)
        # Authorise on the service first: a caller who may not manage it learns nothing
        # about the key's state.
        if service is not None:
            await self._authorizer.enforce(
                self._audit, ctx, "manage-keys", "rotation:set", f"sys/key/{service}"
            )
        reason = key_refusal(record, self._clock.now_us())
        if reason is None and service is None:
            reason = "belongs to no service"
        if reason is not None or service is None:
            raise InvalidInput(f"{path}: the API key it holds {reason}; nothing to roll")
        return {**opts, "service": service}
