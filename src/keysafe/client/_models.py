"""Value types the SDK returns. Built from server JSON, tolerant of added fields."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class Secret:
    """One version of a secret, with its value."""

    path: str
    version: int
    value: str = field(repr=False)  # a value never shows up in a repr or a traceback
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Secret:
        return cls(
            path=str(doc["path"]),
            version=int(doc["version"]),
            value=str(doc["value"]),
            metadata=dict(doc.get("metadata") or {}),
        )


@dataclass(frozen=True, slots=True)
class SecretEntry:
    """A listing row; ``value`` is set only when values were asked for."""

    path: str
    version: int
    updated_at: str | None = None
    value: str | None = field(default=None, repr=False)
    state: str = "active"  # of the current version: active, deleted or destroyed

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> SecretEntry:
        return cls(
            path=str(doc["path"]),
            version=int(doc["version"]),
            updated_at=_opt_str(doc.get("updated_at")),
            value=_opt_str(doc.get("value")),
            state=str(doc.get("state") or "active"),
        )


@dataclass(frozen=True, slots=True)
class SecretVersion:
    version: int
    created_at: str | None = None
    deleted_at: str | None = None
    destroyed: bool = False

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> SecretVersion:
        return cls(
            version=int(doc["version"]),
            created_at=_opt_str(doc.get("created_at")),
            deleted_at=_opt_str(doc.get("deleted_at")),
            destroyed=bool(doc.get("destroyed", False)),
        )


@dataclass(frozen=True, slots=True)
class SecretHistory:
    path: str
    current_version: int | None
    versions: list[SecretVersion]

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> SecretHistory:
        return cls(
            path=str(doc["path"]),
            current_version=_opt_int(doc.get("current_version")),
            versions=[SecretVersion.from_json(v) for v in doc.get("versions", [])],
        )


@dataclass(frozen=True, slots=True)
class SecretMetadata:
    description: str | None = None
    owner: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    expires_at: str | None = None
    max_versions: int | None = None
    current_version: int | None = None
    created_at: str | None = None
    updated_at: str | None = None

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> SecretMetadata:
        return cls(
            description=_opt_str(doc.get("description")),
            owner=_opt_str(doc.get("owner")),
            tags={str(k): str(v) for k, v in (doc.get("tags") or {}).items()},
            expires_at=_opt_str(doc.get("expires_at")),
            max_versions=_opt_int(doc.get("max_versions")),
            current_version=_opt_int(doc.get("current_version")),
            created_at=_opt_str(doc.get("created_at")),
            updated_at=_opt_str(doc.get("updated_at")),
        )


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token record as the server lists it (never the token itself)."""

    id: str
    prefix: str | None = None
    mode: str | None = None
    expires_at: str | None = None
    revoked: bool = False
    description: str | None = None
    policies: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> TokenInfo:
        return cls(
            id=str(doc["id"]),
            prefix=_opt_str(doc.get("prefix")),
            mode=_opt_str(doc.get("mode")),
            expires_at=_opt_str(doc.get("expires_at")),
            revoked=bool(doc.get("revoked", False)),
            description=_opt_str(doc.get("description")),
            policies=tuple(str(p) for p in doc.get("policies") or ()),
        )


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A freshly created token: the only time the server shows ``token``."""

    id: str
    token: str = field(repr=False)
    prefix: str | None = None
    mode: str | None = None
    expires_at: str | None = None
    description: str | None = None
    policies: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> IssuedToken:
        return cls(
            id=str(doc["id"]),
            token=str(doc["token"]),
            prefix=_opt_str(doc.get("prefix")),
            mode=_opt_str(doc.get("mode")),
            expires_at=_opt_str(doc.get("expires_at")),
            description=_opt_str(doc.get("description")),
            policies=tuple(str(p) for p in doc.get("policies") or ()),
        )


@dataclass(frozen=True, slots=True)
class SealStatus:
    initialized: bool
    sealed: bool
    threshold: int | None = None
    shares: int | None = None
    progress: int = 0
    unseal_mode: str | None = None
    # The unseal attempt's nonce, in the replies to its share holders only ("" else).
    nonce: str = ""
    # An unseal source unseals; the shares are recovery shares.
    recovery: bool = False
    # Why an auto-unseal has not happened yet (source down, operator's seal).
    reason: str = ""

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> SealStatus:
        return cls(
            initialized=bool(doc.get("initialized", False)),
            sealed=bool(doc.get("sealed", True)),
            threshold=_opt_int(doc.get("threshold")),
            shares=_opt_int(doc.get("shares")),
            progress=int(doc.get("progress") or 0),
            unseal_mode=_opt_str(doc.get("unseal_mode")),
            nonce=str(doc.get("nonce") or ""),
            recovery=bool(doc.get("recovery", False)),
            reason=str(doc.get("reason") or ""),
        )


@dataclass(frozen=True, slots=True)
class Health:
    initialized: bool
    sealed: bool
    version: str | None = None

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Health:
        return cls(
            initialized=bool(doc.get("initialized", False)),
            sealed=bool(doc.get("sealed", True)),
            version=_opt_str(doc.get("version")),
        )


@dataclass(frozen=True, slots=True)
class InitResult:
    """Unseal shares and the root token: shown once, at initialisation."""

    shares: list[str] = field(repr=False)
    root_token: str = field(repr=False)
    # True when an unseal source unseals the vault: the shares are recovery shares.
    recovery: bool = False

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> InitResult:
        return cls(
            shares=[str(s) for s in doc["shares"]],
            root_token=str(doc.get("root_token") or ""),
            recovery=bool(doc.get("recovery", False)),
        )


@dataclass(frozen=True, slots=True)
class RewrapProgress:
    rewrapped: int
    remaining: int
    total: int
    keyring_version: int | None = None

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> RewrapProgress:
        return cls(
            rewrapped=int(doc.get("rewrapped", 0)),
            remaining=int(doc.get("remaining", 0)),
            total=int(doc.get("total", 0)),
            keyring_version=_opt_int(doc.get("keyring_version")),
        )


@dataclass(frozen=True, slots=True)
class AuditReport:
    """The result of an audit-trail verification; ``first_bad`` is set when ``ok`` is false."""

    ok: bool
    events: int
    first_bad: int | None = None
    reason: str | None = None
    chain: str | None = None
    # Each chain as the server reports it: chain, node, events, ok, first, last, and
    # first_bad, bad_seq, reason when broken.
    chains: tuple[dict[str, Any], ...] = ()

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> AuditReport:
        chains = doc.get("chains")
        return cls(
            ok=bool(doc.get("ok", False)),
            events=int(doc.get("events", 0)),
            first_bad=_opt_int(doc.get("first_bad")),
            reason=_opt_str(doc.get("reason")),
            chain=_opt_str(doc.get("chain")),
            chains=tuple(c for c in chains if isinstance(c, dict))
            if isinstance(chains, list)
            else (),
        )
