"""Git history and staged scans on repositories built with real git."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from scan_fakes import Fakes

from keysafe.errors import InvalidInput
from keysafe.scan.engine import Engine
from keysafe.scan.gitsource import parse_diff
from keysafe.scan.rules import builtin_rules
from keysafe.scan.service import ScanOptions, ScanService

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
F = Fakes(seed=99)
ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Ada Dev",
    "GIT_AUTHOR_EMAIL": "ada@example.com",
    "GIT_COMMITTER_NAME": "Ada Dev",
    "GIT_COMMITTER_EMAIL": "ada@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": "/nonexistent-keysafe-test-home",
}


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], env=ENV, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def commit(repo: Path, files: dict[str, str | None], message: str) -> str:
    for name, text in files.items():
        path = repo / name
        if text is None:
            path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    return path


def service(jobs: int = 1) -> ScanService:
    return ScanService(Engine(builtin_rules()), ScanOptions(jobs=jobs))


def test_secret_added_then_removed_is_found_with_its_commit(repo: Path) -> None:
    token = F.github()
    commit(repo, {"README.md": "# app\n"}, "init")
    added = commit(repo, {"app/config.py": f"X = 1\nY = 2\nGITHUB_TOKEN = '{token}'\n"}, "add")
    commit(repo, {"app/config.py": "X = 1\nY = 2\n"}, "remove the token")
    assert "ghp_" not in (repo / "app/config.py").read_text()
    result = service().scan_git(str(repo))
    [finding] = result.findings
    assert finding.commit == added
    assert (finding.file, finding.line, finding.rule) == ("app/config.py", 3, "github-token")
    assert finding.author == "Ada Dev <ada@example.com>"
    assert finding.date
    assert finding.date[:4].isdigit()
    assert finding.secret == token


def test_every_branch_is_scanned_and_each_change_once(repo: Path) -> None:
    commit(repo, {"a.txt": "hello\n"}, "init")
    git(repo, "checkout", "-q", "-b", "feature")
    on_branch = commit(repo, {"b.env": f"STRIPE_KEY={F.stripe()}\n"}, "feature work")
    # Later commits carry the file unchanged: the change is still reported once.
    commit(repo, {"c.txt": "more\n"}, "unrelated")
    git(repo, "checkout", "-q", "main")
    result = service().scan_git(str(repo))
    assert [(f.commit, f.rule) for f in result.findings] == [(on_branch, "stripe-secret-key")]


def test_parallel_history_scan_matches_serial(repo: Path) -> None:
    for i in range(12):
        commit(repo, {f"f{i}.py": f"token = '{F.github()}'\n"}, f"c{i}")
    serial = service(jobs=1).scan_git(str(repo)).findings
    parallel = service(jobs=2).scan_git(str(repo)).findings
    assert len(serial) == 12
    assert [f.fingerprint for f in serial] == [f.fingerprint for f in parallel]


def test_staged_changes_only(repo: Path) -> None:
    commit(repo, {"old.py": f"password = '{F.password()}'\n"}, "old secret")
    (repo / "new.py").write_text(f"import os\nKEY = '{F.aws_id()}'\n")
    git(repo, "add", "new.py")
    (repo / "unstaged.py").write_text(f"token = '{F.github()}'\n")
    result = service().scan_staged(str(repo))
    assert [(f.file, f.line, f.rule, f.commit) for f in result.findings] == [
        ("new.py", 2, "aws-access-key-id", None)
    ]


def test_not_a_repository_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        service().scan_git(str(tmp_path))


def test_shallow_clone_warns_and_scans_what_it_has(repo: Path, tmp_path: Path) -> None:
    commit(repo, {"a.py": f"token = '{F.github()}'\n"}, "one")
    commit(repo, {"b.py": f"token = '{F.github()}'\n"}, "two")
    clone = tmp_path / "shallow"
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", f"file://{repo}", str(clone)], env=ENV, check=True
    )
    result = service().scan_git(str(clone))
    assert any("shallow" in w for w in result.warnings)
    # The shallow root shows its whole tree as added.
    assert {f.file for f in result.findings} == {"a.py", "b.py"}


def test_corrupt_repository_reports_an_error(repo: Path) -> None:
    commit(repo, {"a.py": f"token = '{F.github()}'\n"}, "one")
    commit(repo, {"b.py": "x = 1\n"}, "two")
    blob = git(repo, "rev-parse", "HEAD:b.py")
    (repo / ".git" / "objects" / blob[:2] / blob[2:]).unlink()
    result = service().scan_git(str(repo))
    assert result.problems
    assert all("\n" not in p for p in result.problems)


def test_parse_diff_maps_added_lines_to_file_lines() -> None:
    diff = [
        b"\x1ekeysafe-commit abc\x1fA <a@b>\x1f2024-01-01T00:00:00+00:00\n",
        b"diff --git a/x.py b/x.py\n",
        b"--- a/x.py\n",
        b"+++ b/x.py\n",
        b"@@ -3,0 +4,2 @@\n",
        b"+first\n",
        b"+second\n",
        b"@@ -10 +12 @@\n",
        b"-old\n",
        b"+third\n",
    ]
    [change] = parse_diff(diff, history=True)
    assert change.text == "first\nsecond\nthird"
    assert change.location.line_map == (4, 5, 12)
    assert change.location.commit == "abc"
