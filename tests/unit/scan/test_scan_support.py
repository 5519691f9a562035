"""Custom rules, baselines, output and sources."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from scan_fakes import Fakes

from keysafe.errors import InvalidInput
from keysafe.scan import baseline, custom_rules, output, sources
from keysafe.scan.engine import Engine
from keysafe.scan.models import Finding, Location, fingerprint, redact
from keysafe.scan.rules import builtin_rules
from keysafe.scan.service import ScanOptions, ScanService

F = Fakes(seed=3)


def test_fingerprint_is_pinned() -> None:
    # Baselines in the field store this value: it must never change.
    assert fingerprint("github-token", "a/b.py", "ghp_x") == (
        "c4fd2a1e4facfa3dffd4b10f48b5e35c7ffc108bae7471714be484142eef7d48"
    )


def test_fingerprint_ignores_line_and_commit() -> None:
    one = Finding("r", "d", "f.py", 1, 1, "s3cret", commit="a")
    two = Finding("r", "d", "f.py", 90, 4, "s3cret", commit="b")
    assert one.fingerprint == two.fingerprint


def test_redact_hides_most_of_the_secret() -> None:
    assert redact("ghp_abcdefghijklmnopqrstuvwxyz") == "ghp_" + "*" * 16 + "wxyz"
    assert redact("short") == "*****"


def test_baseline_round_trip(tmp_path: Path) -> None:
    found = [Finding("r", "d", "f.py", 1, 1, "s3cret"), Finding("r", "d", "g.py", 2, 1, "x")]
    path = tmp_path / "b.json"
    baseline.write(path, found)
    assert "s3cret" not in path.read_text()
    known = baseline.load(path)
    assert baseline.filter_new([*found, Finding("r", "d", "h.py", 1, 1, "new")], known)[0].file == (
        "h.py"
    )


@pytest.mark.parametrize("content", ["not json", '{"nope": 1}', "[]"])
def test_bad_baseline_is_input_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "b.json"
    path.write_text(content)
    with pytest.raises(InvalidInput):
        baseline.load(path)


GITLEAKS = """
title = "team rules"

[extend]
useDefault = true

[allowlist]
paths = ['''vendor/''']

[[rules]]
id = "acme-key"
description = "Acme key"
regex = '''(?i)acme[_-]?key\\s*=\\s*(?i)([a-z0-9]{20})'''
secretGroup = 1
entropy = 3.0
keywords = ["ACME"]
  [[rules.allowlists]]
  stopwords = ["testtesttest"]

[[rules]]
id = "posix"
regex = '''tok:[[:alnum:]]{10}\\z'''
"""


def test_gitleaks_format_rules(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(GITLEAKS)
    ruleset = custom_rules.load(path)
    assert ruleset.use_default
    assert [r.id for r in ruleset.rules] == ["acme-key", "posix"]
    assert ruleset.rules[0].keywords == ("acme",)
    engine = Engine(ruleset.rules, ruleset.allow_paths, ruleset.allow_values, ruleset.stopwords)
    text = "ACME_KEY = Zq81Kd02LmNx5Ty7Qw3e\nacme_key = testtesttestxxxxxxxxx\n"
    assert [(f.rule, f.line) for f in engine.scan_text(text, Location("a.ini"))] == [
        ("acme-key", 1)
    ]
    assert engine.path_allowed("vendor/lib.ini")
    assert [f.rule for f in engine.scan_text("x tok:abcde12345", Location("b"))] == ["posix"]


def test_bad_regex_names_file_line_and_rule(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text('[[rules]]\nid = "good"\nregex = "a"\n\n[[rules]]\nid = "bad"\nregex = "a[b"\n')
    with pytest.raises(InvalidInput, match=r"rules\.toml:6: rule 'bad': invalid regex"):
        custom_rules.load(path)


def test_bad_toml_is_input_error(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text("[[rules]\n")
    with pytest.raises(InvalidInput, match="invalid TOML"):
        custom_rules.load(path)


def test_unreadable_file_is_reported_and_others_scanned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.env").write_text(f"T={F.github()}\n")
    (tmp_path / "b.env").write_text(f"T={F.github()}\n")
    real = sources.read_file_chunks

    def flaky(path: str):  # type: ignore[no-untyped-def]
        if path.endswith("a.env"):
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr("keysafe.scan.service.read_file_chunks", flaky)
    result = ScanService(Engine(builtin_rules()), ScanOptions(jobs=1)).scan_paths([str(tmp_path)])
    assert [Path(f.file).name for f in result.findings] == ["b.env"]
    assert len(result.problems) == 1
    assert "a.env: Permission denied" in result.problems[0]


def test_chunks_keep_pem_blocks_whole() -> None:
    pem = F.pem("RSA ")
    data = ("x\n" * 40 + pem + "\n" + "y\n" * 40).encode()
    chunks = list(sources.iter_text_chunks(io.BytesIO(data), chunk=100))
    assert any(pem in c.text for c in chunks)
    assert "".join(c.text[: c.stop] for c in chunks) == data.decode()


def test_json_output_without_secrets() -> None:
    token = F.github()
    found = [Finding("github-token", "GitHub token", "a.py", 3, 5, token, end_column=45)]
    doc = json.loads(output.to_json(found))
    assert doc["findings"][0]["secret"] != token
    assert json.loads(output.to_json(found, show_secrets=True))["findings"][0]["secret"] == token
    assert token not in output.to_text(found)
    assert token not in output.to_sarif(found, builtin_rules())


def test_catastrophic_custom_rule_finishes(tmp_path: Path) -> None:
    # (a+)+$ hung `keysafe scan` on Python's re; custom rules now run on RE2.
    path = tmp_path / "rules.toml"
    path.write_text(
        "[[rules]]\nid = 'nested'\nregex = '''(a+)+$'''\n"
        "[[rules.allowlists]]\nregexes = ['''(b|b)*c''']\n"
    )
    ruleset = custom_rules.load(path)
    engine = Engine(ruleset.rules, ruleset.allow_paths, ruleset.allow_values, ruleset.stopwords)
    assert engine.scan_text("a" * 50 + "b\n" + "b" * 5000, Location("x.txt")) == []
    assert [f.rule for f in engine.scan_text("aaaa", Location("y.txt"))] == ["nested"]


def test_lookahead_rule_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text("[[rules]]\nid = 'peek'\nregex = '''key(?=[0-9])'''\n")
    expected = r"rules\.toml:2: rule 'peek': invalid regex: .*lookaround is not supported"
    with pytest.raises(InvalidInput, match=expected):
        custom_rules.load(path)
