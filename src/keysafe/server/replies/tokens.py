"""Replies of ``/api/v1/tokens`` and ``/api/v1/sys`` (members, generate-root)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class TokenRecord(BaseModel):
    """A token without its hash (``access.service.public_record``)."""

    id: str
    kind: str
    prefix: str
    mode: str
    description: str
    created_by: str | None
    created_at: str | None
    expires_at: str | None = Field(description="RFC 3339; null: never expires")
    revoked: bool
    policies: list[str]


class TokenIssued(TokenRecord):
    """Shown once: the new token with its secret."""

    token: str


class TokenList(BaseModel):
    tokens: list[TokenRecord]


class TokenSelf(BaseModel):
    """The caller's own credential: a token record, an API key (``/api/v1/keys/{id}``),
    or a person's session."""

    id: str
    kind: str | None = Field(None, description="tokens and sessions; absent for API keys")
    policies: list[str] | None = None
    expires_at: str | None = None
    mfa_at: str | None = Field(None, description="sessions only: the last MFA step")


class Member(BaseModel):
    id: str
    address: str
    version: str
    pid: int
    sealed: bool
    status: str = Field(description='"up" or "down"')
    started_at: int = Field(description="unix microseconds")
    heartbeat_at: int = Field(description="unix microseconds")


class MemberList(BaseModel):
    members: list[Member]


class RootToken(BaseModel):
    root_token: str
