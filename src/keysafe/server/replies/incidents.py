"""Replies of ``/api/v1/incidents`` and the compliance report."""

from __future__ import annotations

from typing import Any

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


class ComplianceCharts(BaseModel):
    secret_age_days: dict[str, int]
    keys_by_risk: dict[str, int]


class ComplianceReport(BaseModel):
    """The compliance report; each row list holds one object per finding."""

    generated_at: str | None
    unused_days: int
    expiring_days: int
    summary: dict[str, Any]
    secrets: list[dict[str, Any]]
    keys: list[dict[str, Any]]
    tokens_without_expiry: list[dict[str, Any]]
    wildcard_policies: list[dict[str, Any]]
    people_without_mfa: list[dict[str, Any]]
    charts: ComplianceCharts
