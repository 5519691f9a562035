"""Replies of ``/api/v1/audit`` and the usage reports."""

from __future__ import annotations

from pydantic import BaseModel, Field


class AuditPlace(BaseModel):
    seq: int = Field(description="order number in the whole trail")
    ts: int | None = Field(None, description="unix microseconds")


class AuditChainReport(BaseModel):
    chain: str = Field(description='a writer chain (node/pid.thread.random), or "root"')
    node: str
    events: int
    ok: bool
    first: AuditPlace | None = None
    last: AuditPlace | None = None
    first_bad: int | None = Field(None, description="when broken: the place in the chain")
    bad_seq: int | None = Field(None, description="when broken: its order number, if it exists")
    reason: str | None = None


class AuditVerifyReply(BaseModel):
    ok: bool
    events: int = Field(description="how many events were checked")
    first_bad: int | None = Field(None, description="when broken: the first bad event")
    reason: str | None = Field(None, description="when broken: why")
    chain: str | None = Field(None, description="when broken: the chain of the first bad event")
    chains: list[AuditChainReport] = Field(
        default_factory=list, description="each chain, stitched by time"
    )


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
    chain: str | None = Field(None, description="its writer chain (absent: the root chain)")
    chain_seq: int | None = Field(None, description="its place in that chain")


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
