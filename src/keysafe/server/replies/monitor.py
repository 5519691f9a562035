"""Replies of ``/api/v1/audit`` and the usage reports."""

from __future__ import annotations

from pydantic import BaseModel, Field


class AuditVerifyReply(BaseModel):
    ok: bool
    events: int = Field(description="how many events were checked")
    first_bad: int | None = Field(None, description="when broken: the first bad event")
    reason: str | None = Field(None, description="when broken: why")


class AuditEventRecord(BaseModel):
    seq: int
    ts: int = Field(description="unix microseconds")
    request_id: str
    actor: str
    source: str
    operation: str
    path: str
    outcome: str
    detail: str
    node: str
    prev_hash: str = Field(description="hex")
    hash: str = Field(description="hex")


class AuditEventList(BaseModel):
    events: list[AuditEventRecord]


class UsageCounts(BaseModel):
    requests: int
    ok: int
    denied: int
    limited: int
    errors: int


class UsageDay(UsageCounts):
    date: str = Field(description="YYYY-MM-DD (UTC)")


class UsageReport(BaseModel):
    kind: str
    id: str
    days: int
    first_used_at: str | None
    last_used_at: str | None
    totals: UsageCounts
    per_day: list[UsageDay]
    sources: list[str]
    paths: list[str]
    actors: list[str]
    item_limits: dict[str, int] = Field(
        description="values kept per hour for each of sources, paths and actors"
    )
