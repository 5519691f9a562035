"""Git as a source: every commit of every branch, and the staged diff.

History is read with ``git log -p -U0``: each commit shows only the lines it added, so
every change is scanned once, in the commit that introduced it, however many later
commits carry the file. Only added lines are scanned; their real line numbers come from
the hunk headers.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from keysafe.errors import InvalidInput
from keysafe.scan.models import Location

RECORD = "\x1ekeysafe-commit "
LOG_FORMAT = "--format=" + RECORD.replace("\x1e", "%x1e") + "%H%x1f%an <%ae>%x1f%aI"
_HUNK = re.compile(rb"^@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@")
_DIFF_OPTS = [
    "-p",
    "-U0",
    "--no-color",
    "--no-ext-diff",
    "--no-textconv",
    "--no-renames",
    "--diff-filter=ACMRT",
]


@dataclass
class Change:
    """The lines one commit (or the index) added to one file."""

    location: Location
    text: str


@dataclass
class _Builder:
    path: str | None = None
    lines: list[str] = field(default_factory=list)
    numbers: list[int] = field(default_factory=list)
    next_line: int = 0


def git(repo: str, *args: str, stdin: bytes | None = None) -> bytes:
    """Run git in ``repo`` and return its stdout; raises InvalidInput naming git's error."""
    try:
        done = subprocess.run(["git", "-C", repo, *args], input=stdin, capture_output=True)
    except OSError as exc:
        raise InvalidInput(f"cannot run git: {exc.strerror}") from exc
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise InvalidInput(message[-1] if message else f"git {args[0]} failed")
    return done.stdout


def check_repository(repo: str) -> list[str]:
    """Raise InvalidInput when ``repo`` is not a git repository; return warnings about it."""
    git(repo, "rev-parse", "--git-dir")
    if git(repo, "rev-parse", "--is-shallow-repository").strip() == b"true":
        return [f"{repo} is a shallow clone: commits before its graft are not scanned"]
    return []


def all_commits(repo: str) -> list[str]:
    """Every commit reachable from any ref, newest first."""
    out = git(repo, "rev-list", "--all")
    return out.decode("ascii", "replace").split()


def history_changes(repo: str, commits: list[str], errors: list[str]) -> Iterator[Change]:
    """The added lines of each of ``commits``; a failure of git lands in ``errors``."""
    if not commits:
        return
    cmd = [
        "git",
        "-C",
        repo,
        "-c",
        "core.quotePath=false",
        "log",
        "--no-walk=unsorted",
        "--stdin",
        LOG_FORMAT,
        *_DIFF_OPTS,
    ]
    yield from _run_diff(cmd, "\n".join(commits).encode() + b"\n", errors, history=True)


def staged_changes(repo: str, errors: list[str]) -> Iterator[Change]:
    """The lines the index adds compared to HEAD: what the next commit would bring."""
    cmd = ["git", "-C", repo, "-c", "core.quotePath=false", "diff", "--cached", *_DIFF_OPTS]
    yield from _run_diff(cmd, None, errors, history=False)


def _run_diff(
    cmd: list[str], stdin: bytes | None, errors: list[str], history: bool
) -> Iterator[Change]:
    try:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    except OSError as exc:
        raise InvalidInput(f"cannot run git: {exc.strerror}") from exc
    assert proc.stdin is not None
    assert proc.stdout is not None
    assert proc.stderr is not None
    if stdin:
        proc.stdin.write(stdin)
    proc.stdin.close()
    try:
        yield from parse_diff(proc.stdout, history=history)
    finally:
        proc.stdout.close()
        stderr = proc.stderr.read().decode("utf-8", "replace").strip()
        proc.stderr.close()
        if proc.wait() != 0:
            lines = stderr.splitlines()
            errors.append(
                "git history could not be read completely: "
                + (lines[-1] if lines else f"exit {proc.returncode}")
            )


def parse_diff(lines: Iterable[bytes], *, history: bool) -> Iterator[Change]:
    """Changes from ``git log -p -U0`` (``history``) or ``git diff -U0`` output."""
    commit: tuple[str, str, str] | None = None
    current = _Builder()
    for raw in lines:
        first = raw[:1]
        if first == b"+":
            if current.path is not None and not raw.startswith(b"+++ "):
                current.lines.append(raw[1:].rstrip(b"\r\n").decode("utf-8", "replace"))
                current.numbers.append(current.next_line)
                current.next_line += 1
                continue
            if raw.startswith(b"+++ "):
                yield from _flush(current, commit)
                current = _Builder(path=_path_of(raw[4:]))
            continue
        if first == b"-" or first == b"\\" or first == b" ":
            continue
        if first == b"@":
            hunk = _HUNK.match(raw)
            if hunk:
                current.next_line = int(hunk.group(1))
            continue
        if raw.startswith(RECORD.encode()):
            yield from _flush(current, commit)
            current = _Builder()
            sha, author, date = (
                raw[len(RECORD) :].rstrip(b"\n").decode("utf-8", "replace").split("\x1f")
            )
            commit = (sha, author, date)
        elif raw.startswith(b"diff --git "):
            yield from _flush(current, commit)
            current = _Builder()
    yield from _flush(current, commit)


def _flush(builder: _Builder, commit: tuple[str, str, str] | None) -> Iterator[Change]:
    if builder.path is None or not builder.lines:
        return
    sha, author, date = commit if commit else (None, None, None)
    location = Location(builder.path, sha, author, date, line_map=tuple(builder.numbers))
    yield Change(location, "\n".join(builder.lines))


def _path_of(raw: bytes) -> str | None:
    text = raw.rstrip(b"\r\n").decode("utf-8", "replace")
    if text == "/dev/null":
        return None
    if text.startswith('"') and text.endswith('"'):
        # git C-quotes names with control characters even with core.quotePath off.
        text = text[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")
        text = text.encode("latin-1", "replace").decode("utf-8", "replace")
    return text[2:] if text.startswith("b/") else text
