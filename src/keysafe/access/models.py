"""Who is calling and what they may do.

Capability names are persisted in policies and audit events: only ever add.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Capability = Literal["read", "list", "write", "delete", "destroy", "admin"]

MODE_ROOT = "root"
MODE_READ = "read"
MODE_WRITE = "write"

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

    @property
    def is_root(self) -> bool:
        return self.mode == MODE_ROOT


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

    def __bool__(self) -> bool:
        return False


Decision = Allow | Deny


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
