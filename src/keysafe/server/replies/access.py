"""Replies of policies, policy checks, services and API keys."""

from __future__ import annotations

from pydantic import BaseModel, Field


class PolicyWritten(BaseModel):
    name: str
    rules: int
    updated_at: str | None


class PolicyList(BaseModel):
    policies: list[PolicyWritten]


class PolicyRecord(BaseModel):
    name: str
    text: str
    updated_at: str | None
    updated_by: str | None


class RuleOutcome(BaseModel):
    rule: str
    applies: bool
    note: str


class PolicyCheckReply(BaseModel):
    allowed: bool
    reason: str | None
    deciding_rule: str | None
    mfa_required_within_minutes: int | None = Field(
        description="set when a step-up MFA would grant the request"
    )
    rules: list[RuleOutcome]


class ServiceRecord(BaseModel):
    id: str
    name: str
    description: str
    policies: list[str]
    created_at: str | None
    disabled: bool


class ServiceList(BaseModel):
    services: list[ServiceRecord]


class KeyRecord(BaseModel):
    """An API key without its hash (``access.apikeys.public_key_record``)."""

    id: str
    prefix: str
    key_space: str
    service_id: str
    description: str
    policies: list[str]
    cidrs: list[str]
    rate_limit: str | None
    created_at: str | None
    created_by: str | None
    expires_at: str | None
    revoked: bool
    suspended: bool
    suspended_at: str | None
    suspended_reason: str | None
    grace_until: str | None
    replaced_by: str | None
    last_used_at: str | None
    last_used_from: str | None
    use_count: int


class KeyIssued(KeyRecord):
    """Shown once: the new key with its secret."""

    key: str


class KeyList(BaseModel):
    keys: list[KeyRecord]
