"""Test helpers for in-process vaults (imported by the integration tests)."""

from __future__ import annotations

from keysafe.access.models import Principal, RequestContext
from keysafe.server.services import Services


class Vault:
    """An initialised, unsealed vault in process, plus its root token."""

    def __init__(self, services: Services, root_token: str, unseal_key: str) -> None:
        self.svc = services
        self.root_token = root_token
        self.unseal_key = unseal_key
        principal = services.tokens.authenticate(root_token)
        self.root = RequestContext(principal, "127.0.0.1", "test-request")

    def context_for(self, principal: Principal) -> RequestContext:
        return RequestContext(principal, "127.0.0.1", "test-request")
