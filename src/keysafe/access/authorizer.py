"""One place that decides: the root token passes, every other caller is judged by the
compiled policies it carries (API keys, people's sessions, policy-bound tokens); tokens
of the vault core without policies keep their read/write mode under a prefix."""

from __future__ import annotations

import datetime as dt

from keysafe.access.models import (
    KIND_KEY,
    KIND_USER,
    Decision,
    Deny,
    Principal,
    RequestContext,
    authorize,
    denial,
    request_event,
)
from keysafe.access.policy import AccessRequest
from keysafe.access.policy_store import PolicyStore
from keysafe.audit.models import OUTCOME_DENIED
from keysafe.audit.service import AuditLog
from keysafe.clock import Clock

__all__ = ["KIND_KEY", "KIND_USER", "Authorizer"]


class Authorizer:
    def __init__(self, store: PolicyStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def decide(self, principal: Principal, capability: str, path: str, source: str) -> Decision:
        """Allow or Deny; never raises. Deny by default."""
        if not principal.judged_by_policies:
            return authorize(principal, capability, path)
        request = self.request(capability, path, source, mfa_at=principal.mfa_at)
        return self._store.policy_set(principal.policies).decide(request)

    async def enforce(
        self, audit: AuditLog, ctx: RequestContext, capability: str, operation: str, path: str
    ) -> None:
        """Raise Forbidden (MfaRequired for a step-up) unless ``ctx`` may use
        ``capability`` on ``path``; a refusal is audited first as ``operation``."""
        decision = self.decide(ctx.principal, capability, path, ctx.source)
        if isinstance(decision, Deny):
            event = request_event(
                ctx, self._clock.now_us(), operation, path, OUTCOME_DENIED, decision.reason
            )
            await audit.record(event)
            raise denial(decision)

    def request(
        self, capability: str, path: str, source: str, *, mfa_at: int | None = None
    ) -> AccessRequest:
        """The policy engine's question for ``capability`` on ``path`` now."""
        now = dt.datetime.fromtimestamp(self._clock.now_us() / 1_000_000, tz=dt.UTC)
        mfa = None if mfa_at is None else dt.datetime.fromtimestamp(mfa_at / 1e6, tz=dt.UTC)
        return AccessRequest(capability, path, source=source, now=now, mfa_at=mfa)
