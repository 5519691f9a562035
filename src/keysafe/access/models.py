"""Who is calling and what they may do.

Capability names are persisted in policies and audit events: only ever add.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from keysafe.audit.models import AuditEvent
from keysafe.errors import Forbidden, MfaRequired

Capability = Literal["read", "list", "write", "delete", "destroy", "admin"]

KIND_KEY = "key"
KIND_USER = "user"
POLICY_KINDS = frozenset({KIND_KEY, KIND_USER})

MODE_ROOT = "root"
MODE_READ = "read"
MODE_WRITE = "write"
MODE_POLICY = "policy"  # a policy-bound token: its policies alone decide

# What each token mode grants on the paths under its prefix. The full policy model of
# the least-privilege issue replaces this table with compiled policy documents.
MODE_CAPABILITIES: dict[str, frozenset[str]] = {
    MODE_READ: frozenset({"read", "list"}),
    MODE_WRITE: frozenset({"read", "list", "write", "delete", "destroy"}),
}


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: one token's record, never the token itself."""

    token_id: str
    kind: str  # "root" | "scoped"
    mode: str
    prefix: str
    expires_at: int | None  # unix microseconds
    # Policy names bound to an API key (kind "key"); tokens of the vault core have none.
    policies: tuple[str, ...] = ()
    # When this caller last proved a second factor (unix microseconds): a person's
    # session after a TOTP login; None for machines and password-only sessions.
    mfa_at: int | None = None
    # The API key whose address allowlist and rate limit bind this caller: the key
    # itself, the key a JWT was exchanged from, or a child token's nearest key ancestor.
    source_key: str | None = None
    # The concrete credential behind a person's principal (their session id), so that a
    # token minted in a session can follow that session.
    credential_id: str | None = None

    @property
    def is_root(self) -> bool:
        return self.mode == MODE_ROOT

    @property
    def judged_by_policies(self) -> bool:
        """True for API keys, people's sessions and policy-bound tokens: no policy
        means no access. Tokens of the vault core keep their mode and prefix."""
        return not self.is_root and (self.kind in POLICY_KINDS or bool(self.policies))


@dataclass(frozen=True, slots=True)
class RequestContext:
    """The caller plus where the request came from, for authorisation and audit."""

    principal: Principal
    source: str
    request_id: str


@dataclass(frozen=True, slots=True)
class Allow:
    reason: str = ""
    # The policy rule that decided, as ``policy check`` shows it; None for token modes.
    rule: str | None = None

    def __bool__(self) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class Deny:
    reason: str
    # The policy rule that decided; None when no rule did (nothing granted the request).
    rule: str | None = None
    # Minutes of a step-up: a second factor this recent would have granted the request.
    mfa_within: int | None = None

    def __bool__(self) -> bool:
        return False


Decision = Allow | Deny


def request_event(
    ctx: RequestContext, ts: int, operation: str, path: str, outcome: str, detail: str = ""
) -> AuditEvent:
    """The audit event of an operation ``ctx``'s caller asked for (never a value)."""
    return AuditEvent(
        ts,
        ctx.request_id,
        ctx.principal.token_id,
        ctx.source,
        operation,
        path[:512],
        outcome,
        detail[:2000],
    )


def denial(decision: Deny) -> Forbidden:
    """The error a caller gets for ``decision``: MfaRequired when a recent second
    factor would have granted it (the caller can step up), else Forbidden."""
    if decision.mfa_within is not None:
        return MfaRequired(
            f"permission denied: {decision.reason}", mfa_within_minutes=decision.mfa_within
        )
    return Forbidden(f"permission denied: {decision.reason}")


def authorize(principal: Principal, capability: str, path: str) -> Decision:
    """Whether ``principal`` may use ``capability`` on ``path`` (a secret path or prefix)."""
    if principal.is_root:
        return Allow("root token")
    if capability == "admin":
        return Deny("this operation needs the root token")
    allowed = MODE_CAPABILITIES.get(principal.mode, frozenset())
    if capability not in allowed:
        return Deny(f"a {principal.mode} token may not {capability}")
    if not covers(principal.prefix, path):
        return Deny(f"the token is limited to {principal.prefix!r}")
    return Allow(f"{principal.mode} token for {principal.prefix!r}")


def covers(prefix: str, path: str) -> bool:
    """True when ``path`` lies under ``prefix`` (a folder ``a/b/`` or a plain prefix)."""
    return prefix == "" or path.startswith(prefix)
