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
    diff = (
        b"\x1ekeysafe-commit abc\x1fA <a@b>\x1f2024-01-01T00:00:00+00:00\x00\n"
        b":100644 100644 1111111 2222222 M\x00x.py\x00\x00"
        b"diff --git a/x.py b/x.py\n"
        b"--- a/x.py\n"
        b"+++ b/x.py\n"
        b"@@ -3,0 +4,2 @@\n"
        b"+first\n"
        b"+++ b/second\n"
        b"@@ -10 +12 @@\n"
        b"-old\n"
        b"+third\n"
    )
    [change] = parse_diff(diff, history=True)
    assert change.text == "first\n++ b/second\nthird"
    assert change.location.line_map == (4, 5, 12)
    assert change.location.commit == "abc"
    assert change.location.path == "x.py"


# File names git must not garble: spaces (git adds a TAB after them in +++ lines),
# quotes, backslashes, tabs and newlines (C-quoted), non-ASCII, a leading dash.
NAMES = [
    "a b.py",
    'say "hi".env',
    "back\\slash.py",
    "tab\tname.py",
    "new\nline.py",
    "café/ключ.yml",
    "-dash.py",
    "dir with space/x y.txt",
]


@pytest.mark.parametrize("name", NAMES)
def test_any_file_name_is_reported_exactly(repo: Path, name: str) -> None:
    token = F.github()
    commit(repo, {name: f"x = 1\nT = '{token}'\n"}, "add")
    [finding] = service().scan_git(str(repo)).findings
    assert (finding.file, finding.line, finding.secret) == (name, 2, token)


# Added lines that look like diff structure: each must stay content.
LOOKALIKES = [
    "++ /dev/null",
    "++ b/other.py",
    "+++ b/x",
    "-- a/x",
    "diff --git a/q b/q",
    "@@ -1 +1 @@",
    "\x1ekeysafe-commit deadbeef",
    "\\ No newline at end of file",
]


@pytest.mark.parametrize("lookalike", LOOKALIKES)
def test_content_that_looks_like_diff_structure(repo: Path, lookalike: str) -> None:
    token = F.github()
    commit(repo, {"f.py": "a\n"}, "one")
    commit(repo, {"f.py": f"a\n{lookalike}\nT = '{token}'\n"}, "two")
    [finding] = service().scan_git(str(repo)).findings
    assert (finding.file, finding.line, finding.secret) == ("f.py", 3, token)


def test_evil_merge_resolution_is_scanned(repo: Path) -> None:
    commit(repo, {"conf.py": "a = 1\n", "other.py": "x\n"}, "base")
    git(repo, "checkout", "-q", "-b", "side")
    side_token = F.github()
    side = commit(repo, {"conf.py": f"a = 1\nb = '{side_token}'\n"}, "side")
    git(repo, "checkout", "-q", "main")
    commit(repo, {"other.py": "x\ny\n"}, "main")
    git(repo, "merge", "-q", "--no-commit", "side")
    evil_token = F.github()
    (repo / "conf.py").write_text(f"a = 1\nb = '{side_token}'\nc = '{evil_token}'\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "merge")
    merge = git(repo, "rev-parse", "HEAD")
    found = {(f.secret, f.commit, f.line) for f in service().scan_git(str(repo)).findings}
    # The side's token once, in its own commit; the merge's own line in the merge.
    assert found == {(side_token, side, 2), (evil_token, merge, 3)}


def test_stashes_are_scanned_old_and_new(repo: Path) -> None:
    commit(repo, {"app.py": "a = 1\n"}, "base")
    tokens = []
    for _ in range(2):
        token = F.github()
        tokens.append(token)
        (repo / "app.py").write_text(f"a = 1\nT = '{token}'\n")
        git(repo, "stash", "-q")
    found = {f.secret for f in service().scan_git(str(repo)).findings}
    assert found == set(tokens)


def test_every_ref_kind_is_scanned(repo: Path) -> None:
    commit(repo, {"a.py": "a\n"}, "base")
    git(repo, "checkout", "-q", "--orphan", "detached-work")
    token = F.github()
    sha = commit(repo, {"b.py": f"T = '{token}'\n"}, "on a tag only")
    git(repo, "tag", "v1")
    git(repo, "checkout", "-q", "main")
    git(repo, "branch", "-q", "-D", "detached-work")
    [finding] = service().scan_git(str(repo)).findings
    assert (finding.secret, finding.commit) == (token, sha)
