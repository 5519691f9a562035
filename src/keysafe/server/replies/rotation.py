"""Replies of ``/api/v1/rotation``: policies, runs and approved targets."""

from __future__ import annotations

from pydantic import BaseModel, Field


class RotationRun(BaseModel):
    """A run as the API shows it (never the pending value)."""

    id: str
    path: str
    rotator: str
    trigger: str
    step: str
    outcome: str | None
    previous_version: int | None
    new_version: int | None
    started_at: str | None
    finished_at: str | None
    error: str | None


class RotationPolicyStatus(BaseModel):
    """Schedule, last run, outcome and work in flight of one secret's policy."""

    path: str
    rotator: str
    options: dict[str, str]
    every_seconds: int
    grace_seconds: int
    next_due: str | None
    due: bool
    running: bool
    in_flight_run: str | None
    retire_at: str | None
    failures: int
    last_run: str | None
    last_run_at: str | None
    last_outcome: str | None
    last_error: str | None
    updated_at: str | None
    updated_by: str


class RotationPolicyDetail(RotationPolicyStatus):
    runs: list[RotationRun] = Field(description="the latest runs")


class RotationPolicyList(BaseModel):
    policies: list[RotationPolicyStatus]


class RotationTarget(BaseModel):
    id: str
    kind: str = Field(description='"postgres" or "redis"')
    host: str
    port: int
    database: str
    roles: list[str]
    target: str
    created_at: str | None
    created_by: str


class RotationTargetList(BaseModel):
    targets: list[RotationTarget]
