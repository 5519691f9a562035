"""Incident reports and the compliance page: every step with its time, values escaped."""

from __future__ import annotations

import re

import pytest

from keysafe.incident.compliance import Compliance
from keysafe.incident.compliance_render import bar_chart, to_html, to_markdown
from keysafe.incident.models import Incident, Item, Step, TimelineEntry
from keysafe.incident.report import md, report_json, report_markdown
from keysafe.timefmt import iso_us

T0 = 1_700_000_000_000_000
EVIL = "<script>alert(1)</script>|`x`*[y](z)"


def _incident() -> Incident:
    return Incident(
        id="inc_1",
        title="leaked " + EVIL,
        status="open",
        source="api",
        opened_at=T0,
        opened_by="tok_root",
        items=[Item("key", "key_1", "seen at " + EVIL), Item("secret", "a/B", "")],
        steps=[
            Step(T0 + 1, "open", "open", "", "tok_root", "done", "opened"),
            Step(T0 + 2, "contain", "revoke-key", "key_1", "tok_root", "done", "revoked"),
            Step(T0 + 3, "eradicate", "rotate-secret", "a/B", "tok_root", "manual", "by hand"),
            Step(T0 + 4, "verify", "verify-key", "key_1", "tok_root", "done", "refused"),
        ],
    )


def _timeline() -> list[TimelineEntry]:
    return [TimelineEntry(T0 - 5, "audit", "secret:read", "a/B", "key_1", "ok", EVIL)]


def test_markdown_lists_every_step_with_its_time() -> None:
    text = report_markdown(_incident(), _timeline(), T0 + 10)
    for step in _incident().steps:
        line = next(ln for ln in text.splitlines() if ln.startswith(f"| {iso_us(step.ts)} "))
        assert md(step.action) in line
        assert step.outcome in line
    assert "- [ ] rotate-secret a/B: by hand (manual)" in text
    assert iso_us(T0 - 5) in text  # the audit event before the incident


def test_markdown_escapes_what_it_did_not_write() -> None:
    text = report_markdown(_incident(), _timeline(), T0)
    assert "<script>" not in text
    assert "&lt;script&gt;" in text
    for line in text.splitlines():
        if line.startswith("|"):
            # An escaped pipe never splits a cell: every row of a table has its columns.
            cells = re.split(r"(?<!\\)\|", line)
            assert len(cells) - 2 in (3, 7, 2), line


def test_json_report_has_follow_ups_and_timeline() -> None:
    doc = report_json(_incident(), _timeline(), T0 + 10)
    assert [s["time"] for s in doc["steps"]] == [iso_us(T0 + i) for i in range(1, 5)]
    assert [f["action"] for f in doc["follow_ups"]] == ["rotate-secret"]
    assert doc["timeline"][0]["what"] == "secret:read"


@pytest.mark.parametrize(
    ("raw", "safe"),
    [("a|b", "a\\|b"), ("x\ny", "x y"), ("<b>", "&lt;b&gt;"), ("k_1", "k\\_1")],
)
def test_md_cells(raw: str, safe: str) -> None:
    assert md(raw) == safe


def _compliance() -> Compliance:
    report = Compliance(T0, 30, 30)
    report.secrets = [
        {
            "path": "db/" + EVIL,
            "version": 3,
            "created_at": iso_us(T0 - 400 * 86_400_000_000),
            "age_days": 400,
            "last_changed_at": iso_us(T0),
            "days_since_change": 400,
            "expires_at": None,
            "expired": False,
            "expiring": False,
            "rotation": None,
            "rotation_overdue": False,
        }
    ]
    report.keys = [
        {
            "id": "key_1",
            "prefix": "ks_live_abcd",
            "service": EVIL,
            "created_at": iso_us(T0),
            "expires_at": iso_us(T0 + 1),
            "last_used_at": None,
            "policies": ["all"],
            "cidrs": [],
            "risks": ["no_address_limit", "wildcard_policy"],
            "expiring": True,
        }
    ]
    report.wildcard_policies = ["all"]
    report.people_without_mfa = [{"name": EVIL}]
    return report


def test_html_is_self_contained_and_escaped() -> None:
    page = to_html(_compliance())
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
    assert page.count("<svg") == 2
    # No external asset of any kind.
    assert not re.search(r"(src|href)=", page)
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page
    assert "default-src 'none'" in page


def test_markdown_compliance_and_charts() -> None:
    text = to_markdown(_compliance())
    assert "| Keys with wildcard policies | 1 |" in text
    assert "<script>" not in text
    chart = bar_chart("t <x>", [("a&b", 3), ("c", 0)])
    assert "t &lt;x&gt;" in chart
    assert "a&amp;b" in chart
    assert dict(_compliance().age_histogram())["> 365 d"] == 1
