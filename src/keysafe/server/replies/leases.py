"""Replies of ``/api/v1/creds`` and ``/api/v1/leases`` (dynamic database logins)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class CredsRole(BaseModel):
    name: str
    engine: str
    connection_secret: str
    grants: list[str]
    ttl: int = Field(description="default lease TTL, seconds")
    max_ttl: int


class CredsRoleList(BaseModel):
    roles: list[CredsRole]


class IssuedLogin(BaseModel):
    """Shown once: a new login and its lease."""

    lease_id: str
    role: str
    username: str
    password: str
    expires_at: str | None
    max_expires_at: str | None
    ttl: int
    warnings: list[str]


class LeaseRecord(BaseModel):
    lease_id: str
    role: str
    username: str
    state: str
    created_at: str | None
    created_by: str
    expires_at: str | None
    max_expires_at: str | None
    revoked_at: str | None
    revoke_error: str | None
    attempts: int


class LeaseList(BaseModel):
    leases: list[LeaseRecord]


class LeaseRevoked(LeaseRecord):
    already: bool = Field(description="true when the lease was already revoked")


class LeaseRenewed(BaseModel):
    lease_id: str
    expires_at: str | None
    max_expires_at: str | None
    ttl: int
    capped: bool
    warnings: list[str]


class PrefixRevoked(BaseModel):
    prefix: str
    revoked: int
    failed: int
