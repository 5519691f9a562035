"""Replies of ``/api/v1/incidents`` and the compliance report."""

from __future__ import annotations

from pydantic import BaseModel, Field


class IncidentItem(BaseModel):
    """One leaked thing: its id or path, never its value."""

    kind: str
    ref: str
    note: str


class IncidentStep(BaseModel):
    time: str | None
    phase: str
    action: str
    target: str
    actor: str
    outcome: str
    detail: str


class IncidentNote(BaseModel):
    target: str
    outcome: str
    detail: str


class TimelineEntry(BaseModel):
    time: str | None
    kind: str = Field(description='"step" or "audit"')
    what: str
    target: str
    actor: str
    outcome: str
    detail: str


class IncidentRecord(BaseModel):
    id: str
    title: str
    status: str = Field(description='"open" or "closed"')
    source: str
    opened_at: str | None
    opened_by: str
    closed_at: str | None
    closed_by: str | None
    items: list[IncidentItem]
    steps: list[IncidentStep]


class IncidentDetail(IncidentRecord):
    timeline: list[TimelineEntry]


class IncidentReport(IncidentDetail):
    generated_at: str | None
    follow_ups: list[IncidentStep] = Field(description="steps still to be done by hand")


class IncidentPlan(BaseModel):
    """A dry run: what the playbook would do; nothing was done."""

    dry_run: bool
    items: list[IncidentItem]
    notes: list[IncidentNote]
    plan: list[IncidentStep]


class IncidentSummary(BaseModel):
    id: str
    title: str
    status: str
    source: str
    opened_at: str | None
    opened_by: str
    closed_at: str | None
    items: int = Field(description="how many items leaked")


class IncidentList(BaseModel):
    incidents: list[IncidentSummary]


class ComplianceRotation(BaseModel):
    rotator: str
    every_days: float
    last_run_at: str | None
    last_outcome: str | None
    next_due: str | None


class ComplianceSecret(BaseModel):
    path: str
    version: int
    created_at: str | None
    age_days: int
    last_changed_at: str | None
    days_since_change: int
    expires_at: str | None
    expired: bool
    expiring: bool
    rotation: ComplianceRotation | None = Field(description="null: no rotation policy")
    rotation_overdue: bool


class ComplianceKey(BaseModel):
    id: str
    prefix: str
    service: str
    created_at: str | None
    expires_at: str | None
    last_used_at: str | None
    policies: list[str]
    cidrs: list[str]
    risks: list[str]
    expiring: bool


class ComplianceToken(BaseModel):
    id: str
    kind: str
    mode: str
    prefix: str
    created_at: str | None


class CompliancePerson(BaseModel):
    name: str
    roles: list[str]
    last_login_at: str | None


class ComplianceSummary(BaseModel):
    secrets: int
    secrets_expired: int
    secrets_expiring: int
    rotations_overdue: int
    secrets_without_rotation: int
    keys: int
    keys_without_expiry: int
    keys_without_address_limit: int
    keys_with_wildcard_policy: int
    keys_unused: int
    keys_expiring: int
    tokens_without_expiry: int
    people_without_mfa: int


class ComplianceCharts(BaseModel):
    secret_age_days: dict[str, int]
    keys_by_risk: dict[str, int]


class ComplianceReport(BaseModel):
    """The compliance report (``GET /api/v1/report``, JSON)."""

    generated_at: str | None
    unused_days: int
    expiring_days: int
    summary: ComplianceSummary
    secrets: list[ComplianceSecret]
    keys: list[ComplianceKey]
    tokens_without_expiry: list[ComplianceToken]
    wildcard_policies: list[str] = Field(description="policy names")
    people_without_mfa: list[CompliancePerson] | None = Field(
        description="null when the server lists no people"
    )
    charts: ComplianceCharts
