"""``keysafe scan`` as a process: exit codes, formats, inputs, baselines, the git hook."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import jsonschema
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "scan"))
from scan_fakes import Fakes

F = Fakes(seed=5)
SCHEMA = Path(__file__).resolve().parents[1] / "data" / "sarif-schema-2.1.0.json"
ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Ada Dev",
    "GIT_AUTHOR_EMAIL": "ada@example.com",
    "GIT_COMMITTER_NAME": "Ada Dev",
    "GIT_COMMITTER_EMAIL": "ada@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def scan(*args: str, cwd: Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keysafe.scan", "--no-progress", *args],
        cwd=cwd,
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    )


def git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(repo), *args], env=ENV, capture_output=True, text=True)


def no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stderr
    assert "Traceback" not in done.stdout


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("import os\n\nDB = os.environ['DB']\n")
    return tmp_path


def test_clean_tree_exits_0(tree: Path) -> None:
    done = scan(".", cwd=tree)
    assert (done.returncode, done.stdout) == (0, "")


def test_findings_exit_1_and_are_redacted(tree: Path) -> None:
    token = F.github()
    (tree / "src" / "settings.py").write_text(f"X = 1\nGITHUB_TOKEN = '{token}'\n")
    done = scan(".", cwd=tree)
    assert done.returncode == 1
    assert "src/settings.py:2:17: github-token" in done.stdout
    assert token not in done.stdout + done.stderr
    shown = scan(".", "--show-secrets", cwd=tree)
    assert token in shown.stdout


def test_json_output_fields(tree: Path) -> None:
    (tree / "keys.env").write_text(f"AWS_ACCESS_KEY_ID={F.aws_id()}\n")
    done = scan(".", "--format", "json", cwd=tree)
    assert done.returncode == 1
    [finding] = json.loads(done.stdout)["findings"]
    assert {"file", "line", "rule", "column", "fingerprint"} <= finding.keys()
    assert (finding["file"], finding["line"], finding["rule"]) == (
        "keys.env",
        1,
        "aws-access-key-id",
    )


def test_sarif_is_valid_against_the_schema(tree: Path) -> None:
    (tree / "a.env").write_text(f"STRIPE={F.stripe()}\nTOKEN={F.github()}\n")
    done = scan(".", "-f", "sarif", cwd=tree)
    assert done.returncode == 1
    log = json.loads(done.stdout)
    jsonschema.validate(log, json.loads(SCHEMA.read_text()))
    assert log["version"] == "2.1.0"
    results = log["runs"][0]["results"]
    assert {r["ruleId"] for r in results} == {"stripe-secret-key", "github-token"}
    rules = log["runs"][0]["tool"]["driver"]["rules"]
    assert all(rules[r["ruleIndex"]]["id"] == r["ruleId"] for r in results)


def test_empty_sarif_is_valid(tree: Path) -> None:
    done = scan(".", "-f", "sarif", cwd=tree)
    assert done.returncode == 0
    jsonschema.validate(json.loads(done.stdout), json.loads(SCHEMA.read_text()))


def test_stdin_stream(tree: Path) -> None:
    log = "".join(f"2026-01-01 INFO request {i} ok\n" for i in range(5000))
    log += f"2026-01-01 DEBUG auth header Bearer {F.jwt()}\n"
    done = scan("-", "-f", "json", cwd=tree, stdin=log.encode())
    assert done.returncode == 1
    [finding] = json.loads(done.stdout)["findings"]
    assert (finding["file"], finding["line"], finding["rule"]) == ("-", 5001, "jwt")


def test_unknown_format_is_a_usage_error(tree: Path) -> None:
    done = scan(".", "--format", "xml", cwd=tree)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "unknown format 'xml'" in done.stderr
    no_traceback(done)


def test_bad_rule_regex_names_rule_and_line(tree: Path) -> None:
    rules = tree / "rules.toml"
    rules.write_text(
        'title = "x"\n\n[[rules]]\nid = "ok"\nregex = "abc"\n\n'
        '[[rules]]\nid = "broken-rule"\nregex = "(unclosed"\n'
    )
    done = scan(".", "--rules", str(rules), cwd=tree)
    assert done.returncode == 2
    assert "rules.toml:8" in done.stderr
    assert "broken-rule" in done.stderr
    no_traceback(done)


def test_catastrophic_custom_rule_finishes(tree: Path) -> None:
    # (a+)+$ against 'a' * 50 + 'b' hung the scan on Python's re (pytest-timeout guards).
    rules = tree / "rules.toml"
    rules.write_text("[[rules]]\nid = 'nested'\nregex = '(a+)+$'\n")
    (tree / "data.txt").write_text("a" * 50 + "b\n")
    done = scan("data.txt", "--rules", str(rules), cwd=tree)
    assert done.returncode == 0, done.stderr
    no_traceback(done)


def test_lookahead_rule_is_a_usage_error_naming_it(tree: Path) -> None:
    rules = tree / "rules.toml"
    rules.write_text("[[rules]]\nid = 'peek-rule'\nregex = 'key(?=[0-9])'\n")
    done = scan(".", "--rules", str(rules), cwd=tree)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "rules.toml:2: rule 'peek-rule': invalid regex" in done.stderr
    assert "lookaround is not supported" in done.stderr
    no_traceback(done)


def test_custom_gitleaks_rules(tree: Path) -> None:
    rules = tree / "rules.toml"
    rules.write_text(
        "[[rules]]\n"
        'id = "acme-internal-token"\n'
        'description = "Acme internal token"\n'
        "regex = '''(?i)acme_token\\s*=\\s*[\"']?(acme_[a-z0-9]{24})'''\n"
        "secretGroup = 1\n"
        "entropy = 3.0\n"
        'keywords = ["acme_"]\n'
        "[rules.allowlist]\n"
        "regexes = ['''acme_0{24}''']\n"
    )
    (tree / "conf.ini").write_text(
        f"acme_token = acme_{F.pick('abcdefghij0123456789', 24)}\nacme_token = acme_{'0' * 24}\n"
    )
    done = scan(".", "--rules", str(rules), "-f", "json", "--exclude", "rules.toml", cwd=tree)
    assert done.returncode == 1, done.stderr
    found = json.loads(done.stdout)["findings"]
    assert [(f["rule"], f["line"]) for f in found] == [("acme-internal-token", 1)]


def test_baseline_reports_only_new_findings(tree: Path) -> None:
    (tree / "old.env").write_text(f"GITHUB_TOKEN={F.github()}\n")
    written = scan(".", "--write-baseline", ".keysafe-baseline.json", cwd=tree)
    assert written.returncode == 0
    baseline = (tree / ".keysafe-baseline.json").read_text()
    assert "ghp_" not in baseline  # fingerprints only, never secrets
    assert scan(".", "--baseline", ".keysafe-baseline.json", cwd=tree).returncode == 0
    # Moving the old secret down does not make it new; a new secret is reported.
    (tree / "old.env").write_text(f"# moved\n\n{(tree / 'old.env').read_text()}")
    (tree / "new.env").write_text(f"NPM_TOKEN={F.npm()}\n")
    done = scan(".", "--baseline", ".keysafe-baseline.json", "-f", "json", cwd=tree)
    assert done.returncode == 1
    assert [f["file"] for f in json.loads(done.stdout)["findings"]] == ["new.env"]


def test_gitignore_respected_unless_no_ignore(tree: Path) -> None:
    git(tree, "init", "-q")
    (tree / ".gitignore").write_text("secrets/\n")
    (tree / "secrets").mkdir()
    (tree / "secrets" / "prod.env").write_text(f"TOKEN={F.github()}\n")
    assert scan(".", cwd=tree).returncode == 0
    assert scan(".", "--no-ignore", cwd=tree).returncode == 1


def test_gitignore_respected_outside_git(tree: Path) -> None:
    (tree / ".gitignore").write_text("*.env\n")
    (tree / "prod.env").write_text(f"TOKEN={F.github()}\n")
    assert scan(".", cwd=tree).returncode == 0
    assert scan(".", "--no-ignore", cwd=tree).returncode == 1


def test_archives_when_asked(tree: Path) -> None:
    with zipfile.ZipFile(tree / "bundle.zip", "w") as archive:
        archive.writestr("conf/app.env", f"X=1\nSTRIPE={F.stripe()}\n")
    data = f"GITLAB={F.gitlab()}\n".encode()
    with tarfile.open(tree / "logs.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("var/log/app.log")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    assert scan(".", cwd=tree).returncode == 0
    done = scan(".", "--archives", "-f", "json", cwd=tree)
    files = sorted(f["file"] for f in json.loads(done.stdout)["findings"])
    assert files == ["bundle.zip!conf/app.env", "logs.tar.gz!var/log/app.log"]


def test_binary_skipped_and_non_utf8_tolerated(tree: Path) -> None:
    # Binary: control bytes are more than a tenth of the head (a stray NUL is not).
    (tree / "blob.dat").write_bytes(bytes(range(32)) * 8 + f"TOKEN={F.github()}".encode())
    (tree / "latin1.cfg").write_bytes(b"caf\xe9 = 1\n" + f"password = '{F.password()}'\n".encode())
    done = scan(".", "-f", "json", cwd=tree)
    assert done.returncode == 1
    assert [(f["file"], f["line"]) for f in json.loads(done.stdout)["findings"]] == [
        ("latin1.cfg", 2)
    ]


def test_large_file_is_streamed_with_right_lines(tree: Path) -> None:
    filler = "".join(
        f"line {i} of a long generated file with some padding text\n" for i in range(120_000)
    )
    lines = filler.count("\n")
    (tree / "big.log").write_text(filler + F.pem("RSA ") + "\n" + f"t={F.github()}\n")
    done = scan(".", "-f", "json", cwd=tree)
    found = [(f["rule"], f["line"]) for f in json.loads(done.stdout)["findings"]]
    pem_lines = F.pem("RSA ").count("\n") + 1
    assert found == [("private-key", lines + 1), ("github-token", lines + pem_lines + 1)]


def test_broken_symlink_reported_and_scan_continues(tree: Path) -> None:
    (tree / "dangling.env").symlink_to(tree / "missing.env")
    (tree / "real.env").write_text(f"TOKEN={F.github()}\n")
    done = scan(".", "--no-ignore", cwd=tree)
    assert done.returncode == 1
    assert "skipped broken symlink: dangling.env" in done.stderr
    no_traceback(done)
    # A clean tree with a dangling link is still clean (exit 0, as gitleaks).
    (tree / "real.env").unlink()
    clean = scan(".", "--no-ignore", cwd=tree)
    assert clean.returncode == 0, clean.stderr
    no_traceback(clean)


def test_missing_path_is_an_input_error(tree: Path) -> None:
    done = scan("does-not-exist", cwd=tree)
    assert done.returncode == 2
    assert "does-not-exist" in done.stderr
    no_traceback(done)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_history_json(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    token = F.github()
    (tmp_path / "a.py").write_text(f"T = '{token}'\n")
    git(tmp_path, "add", "a.py")
    git(tmp_path, "commit", "-q", "-m", "add")
    (tmp_path / "a.py").write_text("T = None\n")
    git(tmp_path, "commit", "-qam", "remove")
    done = scan("--git", ".", "-f", "json", cwd=tmp_path)
    assert done.returncode == 1
    [finding] = json.loads(done.stdout)["findings"]
    first = git(tmp_path, "rev-list", "--max-parents=0", "HEAD").stdout.strip()
    assert finding["commit"] == first
    assert {"author", "date", "column", "fingerprint"} <= finding.keys()
    assert scan("--git", "-f", "sarif", ".", cwd=tmp_path).returncode == 1


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_not_a_repository(tmp_path: Path) -> None:
    done = scan("--git", ".", cwd=tmp_path)
    assert done.returncode == 2
    assert "not a git repository" in done.stderr
    no_traceback(done)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_pre_commit_hook_blocks_a_commit_with_a_secret(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    hook = tmp_path / ".git" / "hooks" / "pre-commit"
    hook.write_text(f"#!/bin/sh\nexec '{sys.executable}' -m keysafe.scan --staged --no-progress\n")
    hook.chmod(0o755)
    (tmp_path / "ok.py").write_text("print('hello')\n")
    git(tmp_path, "add", "ok.py")
    assert git(tmp_path, "commit", "-q", "-m", "clean").returncode == 0
    (tmp_path / "leak.py").write_text(f"KEY = '{F.aws_id()}'\n")
    git(tmp_path, "add", "leak.py")
    blocked = git(tmp_path, "commit", "-q", "-m", "leak")
    assert blocked.returncode != 0
    assert "leak.py:1" in blocked.stdout + blocked.stderr
    assert git(tmp_path, "rev-list", "--count", "HEAD").stdout.strip() == "1"


# (files, expected summary end, exit code): one summary line on stderr for every scan.
SUMMARIES: list[tuple[dict[str, str], str, int]] = [
    ({"a.txt": "nothing\n"}, ": no leaks found", 0),
    ({"a.env": f"T={F.github()}\n"}, ": 1 leak found", 1),
    ({"a.env": f"T={F.github()}\n", "b.env": f"T={F.github()}\n"}, ": 2 leaks found", 1),
]


@pytest.mark.parametrize(("files", "tail", "code"), SUMMARIES)
def test_summary_line_on_stderr(
    tmp_path: Path, files: dict[str, str], tail: str, code: int
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    done = scan(".", "--no-ignore", "-f", "json", cwd=tmp_path)
    assert done.returncode == code
    [line] = done.stderr.splitlines()
    assert line.startswith(f"keysafe scan: {len(files)} file")
    assert " in " in line
    assert " s: " in line
    assert line.endswith(tail)
    json.loads(done.stdout)  # the report on stdout stays clean


@pytest.mark.parametrize(
    ("flag", "code"), [([], 1), (["--exit-code", "42"], 42), (["--exit-code", "0"], 0)]
)
def test_exit_code_for_findings_is_configurable(tree: Path, flag: list[str], code: int) -> None:
    (tree / "a.env").write_text(f"T={F.github()}\n")
    assert scan(".", *flag, cwd=tree).returncode == code
    # A clean scan still exits 0, and input errors 2, whatever --exit-code says.
    (tree / "a.env").unlink()
    assert scan(".", *flag, cwd=tree).returncode == 0
    assert scan("missing-path", *flag, cwd=tree).returncode == 2


def test_exit_code_out_of_range_is_a_usage_error(tree: Path) -> None:
    done = scan(".", "--exit-code", "300", cwd=tree)
    assert done.returncode == 2
    no_traceback(done)
