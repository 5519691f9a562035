"""One place that decides: token modes for the vault core's tokens, compiled policies
for API keys."""

from __future__ import annotations

import datetime as dt

from keysafe.access.models import Decision, Principal, authorize
from keysafe.access.policy import AccessRequest
from keysafe.access.policy_store import PolicyStore
from keysafe.clock import Clock

KIND_KEY = "key"


class Authorizer:
    def __init__(self, store: PolicyStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def decide(self, principal: Principal, capability: str, path: str, source: str) -> Decision:
        """Allow or Deny; never raises. Deny by default."""
        if principal.kind != KIND_KEY:
            return authorize(principal, capability, path)
        request = self.request(capability, path, source)
        return self._store.policy_set(principal.policies).decide(request)

    def request(self, capability: str, path: str, source: str) -> AccessRequest:
        """The policy engine's question for ``capability`` on ``path`` now."""
        now = dt.datetime.fromtimestamp(self._clock.now_us() / 1_000_000, tz=dt.UTC)
        return AccessRequest(capability, path, source=source, now=now)
