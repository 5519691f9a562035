"""Replies of ``/api/v1/alerts``: alerts, hooks and undeliverable notifications."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class HookRecord(BaseModel):
    """A hook without its sealed signing secret."""

    id: str
    kind: str = Field(description='"webhook" or "email"')
    target: str
    description: str
    signed: bool
    created_at: str | None
    created_by: str


class HookList(BaseModel):
    hooks: list[HookRecord]


class DeadLetter(BaseModel):
    id: str
    alert_id: str
    channel: str
    hook_id: str | None
    target: str
    status: str
    attempts: int
    last_error: str
    created_at: str | None
    next_at: str | None
    done_at: str | None


class DeadLetterList(BaseModel):
    dead_letters: list[DeadLetter]


class AlertRecord(BaseModel):
    """An alert as the API shows it and hooks receive it (evidence holds counts,
    addresses, networks and paths, never secret values)."""

    id: str
    kind: str
    severity: str
    actor: str
    evidence: dict[str, Any]
    first_at: str | None
    last_at: str | None
    count: int
    status: str = Field(description='"open" or "acknowledged"')
    action: str
    action_result: str
    acked_by: str | None
    acked_at: str | None


class AlertList(BaseModel):
    alerts: list[AlertRecord]
