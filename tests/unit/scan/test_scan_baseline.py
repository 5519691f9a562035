"""Baselines survive path spellings and count copies of one secret."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scan_fakes import Fakes

from keysafe.scan import baseline
from keysafe.scan.engine import Engine
from keysafe.scan.rules import builtin_rules
from keysafe.scan.service import ScanOptions, ScanService

F = Fakes(seed=91)


def scan(target: str) -> list:  # type: ignore[type-arg]
    return ScanService(Engine(builtin_rules()), ScanOptions(jobs=1)).scan_paths([target]).findings


@pytest.mark.parametrize("written", [".", "ABS", "./a/", "a"])
@pytest.mark.parametrize("scanned", [".", "ABS", "./a/", "a", "a/"])
def test_baseline_applies_whatever_the_path_spelling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, written: str, scanned: str
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "conf.env").write_text(f"T={F.github()}\n")
    monkeypatch.chdir(tmp_path)

    def spell(target: str) -> str:
        return str(tmp_path) if target == "ABS" else target

    baseline.write(tmp_path / "b.json", scan(spell(written)))
    known = baseline.load(tmp_path / "b.json")
    assert baseline.filter_new(scan(spell(scanned)), known) == []


def test_a_second_copy_of_an_accepted_secret_is_new(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = F.github()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.env").write_text(f"T={token}\n")
    baseline.write(tmp_path / "b.json", scan("."))
    (tmp_path / "c.env").write_text(f"T={token}\nU={token}\n")
    new = baseline.filter_new(scan("."), baseline.load(tmp_path / "b.json"))
    assert [f.line for f in new] == [2]


def test_old_baselines_without_counts_accept_every_copy(tmp_path: Path) -> None:
    token = F.github()
    (tmp_path / "c.env").write_text(f"T={token}\nU={token}\n")
    found = scan(str(tmp_path))
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"version": 1, "findings": [{"fingerprint": found[0].fingerprint}]}))
    assert baseline.filter_new(found, baseline.load(old)) == []
