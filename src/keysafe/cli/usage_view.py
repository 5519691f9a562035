"""Human views of usage (``keysafe key show``); programs use ``--json``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from keysafe.cli.output import cell, data, table


def show_key_usage(record: Mapping[str, Any], usage: Mapping[str, Any]) -> None:
    """The key's record, then its requests per day, sources and paths read."""
    state = "revoked" if record.get("revoked") else "live"
    if state == "live" and record.get("suspended"):
        state = f"suspended ({record.get('suspended_reason') or 'no reason given'})"
    lines = [
        f"key         {record['id']} ({record['prefix']}...) {state}",
        f"service     {record['service_id']}",
        f"policies    {', '.join(record.get('policies') or []) or '-'}",
        f"rate limit  {record.get('rate_limit') or '-'}",
        f"expires     {cell(record.get('expires_at'))}",
        f"first use   {usage.get('first_used_at') or 'never'}",
        f"last use    {usage.get('last_used_at') or 'never'}",
    ]
    if record.get("last_used_from"):
        lines.append(f"last from   {record['last_used_from']}")
    data("\n".join(lines))
    totals = usage["totals"]
    data(
        f"\nlast {usage['days']} day(s): {totals['requests']} requests, {totals['ok']} ok, "
        f"{totals['denied']} denied, {totals['limited']} rate limited, {totals['errors']} failed"
    )
    if usage["per_day"]:
        table(
            None,
            ["day", "requests", "ok", "denied", "limited", "failed"],
            [
                [d["date"], d["requests"], d["ok"], d["denied"], d["limited"], d["errors"]]
                for d in usage["per_day"]
            ],
        )
    data(f"sources     {', '.join(usage['sources']) or '-'}")
    data(f"paths read  {', '.join(usage['paths']) or '-'}")
