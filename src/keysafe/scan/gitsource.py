"""Git as a source: every commit of every branch, and the staged diff.

History is read with ``git log -p -U0``: each commit shows only the lines it added, so
every change is scanned once, in the commit that introduced it, however many later
commits carry the file. Only added lines are scanned; their real line numbers come from
the hunk headers.
"""

from __future__ import annotations

import io
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

from keysafe.errors import InvalidInput
from keysafe.scan.models import Location

RECORD = "\x1ekeysafe-commit "
LOG_FORMAT = "--format=" + RECORD.replace("\x1e", "%x1e") + "%H%x1f%an <%ae>%x1f%aI"
_DIFF_OPTS = [
    "-p",
    "--raw",
    "-z",
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
    """Every commit reachable from any ref or from a stash entry (older stashes live
    only in the stash's reflog), newest first."""
    out = git(repo, "rev-list", "--all")
    try:
        stashes = git(repo, "log", "-g", "--format=%H", "refs/stash")
    except InvalidInput:  # no stash
        stashes = b""
    if stashes.strip():
        out += git(repo, "rev-list", *stashes.decode("ascii", "replace").split())
    return list(dict.fromkeys(out.decode("ascii", "replace").split()))


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
        "--cc",  # merges: what the merge itself wrote, not what it brought in
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


class _Reader:
    """Reads a byte stream up to NUL or newline delimiters, in bounded pieces."""

    def __init__(self, stream: IO[bytes] | bytes) -> None:
        self._stream = io.BytesIO(stream) if isinstance(stream, bytes) else stream
        self._buf = b""
        self._pos = 0
        self._eof = False

    def _fill(self) -> bool:
        if self._eof:
            return False
        data = self._stream.read(1 << 16)
        if not data:
            self._eof = True
            return False
        self._buf = self._buf[self._pos :] + data
        self._pos = 0
        return True

    def peek(self) -> bytes:
        """The next byte, or b"" at the end."""
        while self._pos >= len(self._buf):
            if not self._fill():
                return b""
        return self._buf[self._pos : self._pos + 1]

    def until(self, delim: bytes) -> bytes | None:
        """Bytes up to ``delim`` (consumed, not returned); the rest at the end; None when
        nothing is left."""
        while True:
            found = self._buf.find(delim, self._pos)
            if found >= 0:
                piece = self._buf[self._pos : found]
                self._pos = found + 1
                return piece
            if not self._fill():
                if self._pos >= len(self._buf):
                    return None
                piece = self._buf[self._pos :]
                self._pos = len(self._buf)
                return piece


@dataclass
class _Hunk:
    """Lines still expected in the current hunk: one count per parent and the result."""

    parents: list[int]
    result: int

    def done(self) -> bool:
        return self.result <= 0 and all(n <= 0 for n in self.parents)


_COUNTS = re.compile(rb"([-+])(\d+)(?:,(\d+))?")


def _hunk(line: bytes) -> tuple[_Hunk, int] | None:
    """The counts of a ``@@ -a,b +c,d @@`` or combined ``@@@ -a,b -c,d +e,f @@@`` header,
    and the result's first line."""
    width = len(line) - len(line.lstrip(b"@"))
    close = line.find(b" " + b"@" * width, width)
    if width < 2 or close < 0:
        return None
    parents: list[int] = []
    result, first = 0, 0
    for sign, number, count in _COUNTS.findall(line[width:close]):
        size = 1 if count == b"" else int(count)
        if sign == b"-":
            parents.append(size)
        else:
            result, first = size, int(number)
    if len(parents) != width - 1:
        return None
    return _Hunk(parents, result), first


def _quote(name: bytes) -> bytes:
    """``name`` as git writes it in a diff header (C-quoted when it must be)."""
    if not any(b < 0x20 or b in (0x22, 0x5C, 0x7F) for b in name):
        return name
    escapes = {n: b"\\" + bytes([c]) for n, c in zip(range(7, 14), b"abtnvfr", strict=True)}
    out = bytearray(b'"')
    for b in name:
        if b in escapes:
            out += escapes[b]
        elif b in (0x22, 0x5C):
            out += b"\\" + bytes([b])
        elif b < 0x20 or b == 0x7F:
            out += b"\\%03o" % b
        else:
            out.append(b)
    return bytes(out + b'"')


def _header_names(path: bytes) -> tuple[bytes, bytes]:
    """The ``diff --git`` and ``diff --cc`` headers git writes for ``path``."""
    return (
        b"diff --git " + _quote(b"a/" + path) + b" " + _quote(b"b/" + path),
        b"diff --cc " + _quote(path),
    )


def parse_diff(stream: IO[bytes] | bytes, *, history: bool) -> Iterator[Change]:
    """Changes from ``git log -p --raw -z --cc -U0`` (``history``) or ``git diff --raw -z
    -p -U0`` output.

    File names come from the NUL-terminated raw records, never from ``+++`` lines, and
    each hunk is read by its line counts, so no file content (a line starting "++ ",
    "diff --git" or a record mark) is mistaken for structure. Merge commits come as
    combined diffs: only lines that are in none of the parents (an "evil merge"'s own
    resolution) are scanned.
    """
    reader = _Reader(stream)
    commit: tuple[str, str, str] | None = None
    current = _Builder()
    names: list[bytes] = []
    while True:
        head = reader.peek()
        if head == b"":
            break
        if head in (b"\0", b"\n"):
            reader.until(head)
            continue
        if head == b"\x1e":
            yield from _flush(current, commit)
            current, names = _Builder(), []
            record = reader.until(b"\0") or b""
            sha, author, date = (
                [*record[len(RECORD) :].decode("utf-8", "replace").split("\x1f"), "", ""]
            )[:3]
            commit = (sha, author, date)
            continue
        if head == b":":
            reader.until(b"\0")  # modes, object ids, status
            name = reader.until(b"\0")
            if name is not None:
                names.append(name)
            continue
        line = reader.until(b"\n")
        if line is None:
            break
        if line.startswith(b"diff --"):
            yield from _flush(current, commit)
            current = _Builder(path=_match_name(line, names))
        elif line.startswith(b"@@"):
            parsed = _hunk(line)
            if parsed is not None:
                hunk, current.next_line = parsed
                _read_hunk(reader, hunk, current)
    yield from _flush(current, commit)


def _match_name(header: bytes, names: list[bytes]) -> str | None:
    """The raw record's name that ``header`` announces (records and headers come in the
    same order; a combined diff may skip a file, so look ahead)."""
    for index, name in enumerate(names):
        if header in _header_names(name):
            del names[: index + 1]
            return name.decode("utf-8", "replace")
    return None


def _read_hunk(reader: _Reader, hunk: _Hunk, current: _Builder) -> None:
    width = len(hunk.parents)
    while not hunk.done():
        line = reader.until(b"\n")
        if line is None:
            return
        if line.startswith(b"\\"):
            continue  # "\ No newline at end of file"
        marks, content = line[:width], line[width:]
        in_result = b"-" not in marks
        for index, mark in enumerate(marks):
            if mark in (0x20, 0x2D):  # " " or "-": the line is in this parent
                hunk.parents[index] -= 1
        if in_result:
            hunk.result -= 1
            if current.path is not None and marks == b"+" * width:
                current.lines.append(content.rstrip(b"\r").decode("utf-8", "replace"))
                current.numbers.append(current.next_line)
            current.next_line += 1


def _flush(builder: _Builder, commit: tuple[str, str, str] | None) -> Iterator[Change]:
    if builder.path is None or not builder.lines:
        return
    sha, author, date = commit if commit else (None, None, None)
    location = Location(builder.path, sha, author, date, line_map=tuple(builder.numbers))
    yield Change(location, "\n".join(builder.lines))
