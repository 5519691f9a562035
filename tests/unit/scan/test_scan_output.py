"""Output people expect: redaction that tells tokens apart, SARIF column kind, progress."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scan_fakes import Fakes

from keysafe.scan import gitsource, output
from keysafe.scan.engine import Engine
from keysafe.scan.models import Finding, Location, redact
from keysafe.scan.progress import Progress
from keysafe.scan.rules import builtin_rules
from keysafe.scan.service import ScanService, _scan_changes

F = Fakes(seed=71)

# (secret, redacted)
REDACTIONS: list[tuple[str, str]] = [
    ("short", "*****"),
    ("12345678", "********"),
    ("Kq7xVb9Lm2", "Kq********"),
    ("Kq7xVb9Lm2pQ8rT7", "Kq7x************"),
    ("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "ghp_" + "*" * 16 + "6789"),
    ("sk_live_abcdefghijklmnopqrstuvwx", "sk_live_" + "*" * 16 + "uvwx"),
    ("glpat-abcdefghijklmnopqrst", "glpat-" + "*" * 16 + "qrst"),
    ("AKIAABCDEFGHIJKLMNOP", "AKIA" + "*" * 12 + "MNOP"),
]


@pytest.mark.parametrize(("secret", "shown"), REDACTIONS)
def test_redaction_keeps_prefix_and_last_four(secret: str, shown: str) -> None:
    assert redact(secret) == shown


def test_two_tokens_of_one_provider_redact_differently() -> None:
    first, second = F.github(), F.github()
    assert redact(first) != redact(second)
    assert first not in redact(first)


def test_sarif_declares_its_column_kind() -> None:
    found = [Finding("github-token", "GitHub token", "a.py", 1, 5, F.github(), end_column=45)]
    [run] = json.loads(output.to_sarif(found, builtin_rules()))["runs"]
    assert run["columnKind"] == "unicodeCodePoints"


def test_columns_count_code_points() -> None:
    token = F.github()
    [f] = Engine(builtin_rules()).scan_text(f"# 🔑 é = '{token}'", Location("a.py"))
    assert f.column == len("# 🔑 é = '") + 1


class Recording(Progress):
    def __init__(self) -> None:
        super().__init__(False, 0, "scanning commits")
        self.steps: list[float] = []

    def advance(self, amount: float) -> None:
        self.steps.append(amount)


def test_sequential_git_progress_moves_per_commit() -> None:
    changes = [
        gitsource.Change(Location("a.py", commit=c), f"x = {i}")
        for i, c in enumerate(["c1", "c1", "c2", "c3"])
    ]
    bar = Recording()
    _, size = _scan_changes(Engine(builtin_rules()), iter(changes), bar)
    assert bar.steps == [1, 1, 1]
    assert size == sum(len(c.text) for c in changes)


def test_default_parallelism_is_one_process_on_two_cpus(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    service = ScanService(Engine(builtin_rules()))
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {0, 1})
    assert service._workers(worth_it=True) == 1
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {0, 1, 2, 3})
    assert service._workers(worth_it=True) == 4
    assert service._workers(worth_it=False) == 1
