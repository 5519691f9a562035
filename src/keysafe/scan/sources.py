"""Where text comes from: files, directory trees (honouring .gitignore), archives, streams.

Readers yield ``(text, line_offset)`` chunks so that large files and endless streams are
scanned in bounded memory; binary content is skipped and non-UTF-8 bytes are tolerated.
"""

from __future__ import annotations

import io
import os
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from keysafe.scan.textcodec import SNIFF, Prefixed, Readable, Transcoded, utf16_codec

if TYPE_CHECKING:
    import pathspec

CHUNK = 4 * 1024 * 1024
MAX_MEMBER = 64 * 1024 * 1024
PEM_SPAN = 256 * 1024  # longest key block kept whole across chunk cuts
# Chunks overlap by this much: longer than any match a built-in rule reports outside
# a PEM block, so a token across a cut is found whole in one of the two chunks.
OVERLAP = 64 * 1024
# Extensions that are never text worth scanning.
BINARY_EXT = frozenset(
    [
        ".png",
        ".jpg",
        ".jpeg",
        ".gif",
        ".bmp",
        ".ico",
        ".webp",
        ".tiff",
        ".psd",
        ".pdf",
        ".woff",
        ".woff2",
        ".ttf",
        ".otf",
        ".eot",
        ".mp3",
        ".mp4",
        ".mov",
        ".avi",
        ".wav",
        ".ogg",
        ".flac",
        ".so",
        ".dll",
        ".dylib",
        ".exe",
        ".bin",
        ".o",
        ".a",
        ".class",
        ".pyc",
        ".pyo",
        ".db",
        ".sqlite",
        ".sqlite3",
        ".iso",
        ".dmg",
        ".img",
        ".parquet",
        ".npy",
        ".npz",
        ".pt",
        ".onnx",
        ".h5",
    ]
)
ARCHIVE_EXT = (
    ".zip",
    ".jar",
    ".war",
    ".whl",
    ".tar",
    ".tar.gz",
    ".tgz",
    ".tar.bz2",
    ".tbz2",
    ".tar.xz",
    ".txz",
)


@dataclass
class FileItem:
    """A file to scan: where it is on disk, and how findings name it."""

    path: str
    display: str
    size: int = 0
    archive: bool = False


@dataclass
class Problems:
    """Non-fatal trouble met while collecting or reading inputs, as one-line messages."""

    messages: list[str] = field(default_factory=list)
    # Skipped on purpose, not a failure: the scan still exits 0 when clean.
    warnings: list[str] = field(default_factory=list)

    def add(self, message: str) -> None:
        self.messages.append(message)


def is_archive(name: str) -> bool:
    """True when ``name`` has an archive extension keysafe can open."""
    return name.lower().endswith(ARCHIVE_EXT)


_CONTROL = bytes(b for b in range(32) if b not in b"\t\n\r\f\b\x1b")


def looks_binary(head: bytes) -> bool:
    """True when a file's first bytes say it is binary: control bytes make more than a
    tenth of them (a stray NUL in a log is text; UTF-16 is decoded before this)."""
    head = head[:SNIFF]
    if b"\x00" not in head:
        return False
    return len(head) - len(head.translate(None, _CONTROL)) > len(head) // 10


@dataclass(frozen=True, slots=True)
class Chunk:
    """A decoded piece of a stream, and where it sits in the whole.

    ``stop`` is where this chunk's own text ends: a hit starting at or after it is left
    to the next chunk, which begins there and sees the whole token (chunks overlap by
    :data:`OVERLAP`, longer than any reported match).
    """

    text: str
    line_offset: int = 0
    column_offset: int = 0
    stop: int | None = None


def iter_text_chunks(
    stream: Readable, chunk: int = CHUNK, overlap: int = OVERLAP
) -> Iterator[Chunk]:
    """Decoded chunks of ``stream`` that overlap so no token is cut, in bounded memory.

    A chunk is cut at the last line start before its final :data:`OVERLAP` bytes, or
    inside a long line when there is none; a PEM block that straddles the cut is kept
    whole by cutting before its header. The bytes after the cut start the next chunk.
    """
    carry = b""
    lines_before = 0
    column = 0
    first = True
    while True:
        data = stream.read(chunk)
        if first:
            first = False
            codec = utf16_codec(data)
            if codec is not None:
                yield from iter_text_chunks(
                    Transcoded(Prefixed(data, stream), codec), chunk, overlap
                )
                return
            if looks_binary(data):
                return
        data = carry + data
        if len(data) <= 2 * overlap or not data:
            # Too short to cut: read more unless the stream has ended.
            more = stream.read(chunk) if data else b""
            if more:
                carry = data + more
                continue
            if data:
                yield Chunk(data.decode("utf-8", "replace"), lines_before, column)
            return
        cut = _cut(data, overlap, chunk)
        if cut <= 0:
            carry = data
            continue
        head, carry = data[:cut], data[cut:]
        text = head.decode("utf-8", "replace")
        yield Chunk(text + carry.decode("utf-8", "replace"), lines_before, column, len(text))
        newlines = head.count(b"\n")
        column = len(text) - text.rfind("\n") - 1 if newlines else column + len(text)
        lines_before += newlines


def _cut(data: bytes, overlap: int, chunk: int) -> int:
    """Where the owned part of ``data`` ends: a line start at least ``overlap`` bytes
    before its end, or a character boundary inside one long line; 0 to wait for more."""
    limit = len(data) - overlap
    cut = data.rfind(b"\n", 0, limit) + 1
    if cut < limit // 2:
        # One very long line: cut inside it, never in the middle of a UTF-8 character.
        cut = limit
        while cut > 0 and 0x80 <= data[cut] < 0xC0:
            cut -= 1
    begin = data.rfind(b"-----BEGIN", max(0, cut - PEM_SPAN), cut)
    waiting = len(data) < max(8 * chunk, 4 * PEM_SPAN)  # else: an endless block
    if begin >= 0 and waiting and data.find(b"-----END", begin) < 0:
        return data.rfind(b"\n", 0, begin) + 1  # 0: wait for the rest of the block
    return cut


def read_file_chunks(path: str) -> Iterator[Chunk]:
    """Text chunks of the file at ``path``; nothing for binary files. Raises OSError."""
    with open(path, "rb") as handle:
        yield from iter_text_chunks(handle)


def iter_archive(path: str, display: str, problems: Problems) -> Iterator[tuple[str, bytes]]:
    """``(display name, bytes)`` of each regular member of a zip or tar archive."""
    import tarfile  # only archive scans pay for these imports
    import zipfile

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                for info in archive.infolist():
                    if not info.is_dir() and info.file_size <= MAX_MEMBER:
                        yield f"{display}!{info.filename}", archive.read(info)
            return
        with tarfile.open(path) as tar:
            for member in tar:
                if member.isfile() and member.size <= MAX_MEMBER:
                    extracted = tar.extractfile(member)
                    if extracted is not None:
                        yield f"{display}!{member.name}", extracted.read()
    except (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
        problems.add(f"cannot read archive {display}: {exc}")


def member_chunks(data: bytes) -> Iterator[Chunk]:
    """Text chunks of an archive member held in memory."""
    return iter_text_chunks(io.BytesIO(data))


def collect_files(
    targets: list[str],
    problems: Problems,
    *,
    no_ignore: bool = False,
    archives: bool = False,
    exclude: list[str] | None = None,
) -> list[FileItem]:
    """Every file under ``targets`` to scan, in a stable order, skipping ignored ones.

    Symlinks inside a tree are followed only when they stay inside it; dangling ones
    are skipped with a warning. A nested repository or submodule is walked too.
    """
    excluded = _spec(exclude) if exclude else None
    items: list[FileItem] = []
    for target in targets:
        if os.path.islink(target) and not os.path.exists(target):
            problems.add(f"broken symlink: {target}")
            continue
        if os.path.isfile(target):
            _add(items, target, target, problems, archives, root=None)
        elif os.path.isdir(target):
            root = os.path.realpath(target)
            for rel in _listing(target, problems, no_ignore):
                if excluded is not None and excluded.match_file(rel):
                    continue
                full = os.path.join(target, rel)
                display = os.path.normpath(full) if target not in (".", "./") else rel
                _add(items, full, display, problems, archives, root=root)
        else:
            problems.add(f"no such file or directory: {target}")
    return items


def _listing(target: str, problems: Problems, no_ignore: bool, depth: int = 0) -> list[str]:
    """Relative file names under ``target``; directories git lists as one entry (a
    nested repository, a submodule) are expanded with their own listing."""
    names = None if no_ignore else _git_listing(target)
    if names is None:
        return _walk(target, problems, honour_gitignore=not no_ignore)
    found: list[str] = []
    for rel in names:
        full = os.path.join(target, rel)
        if os.path.isdir(full) and not os.path.islink(full):
            if depth < 8:
                inner = _listing(full, problems, no_ignore, depth + 1)
                found.extend(rel.rstrip("/") + "/" + name for name in inner)
        else:
            found.append(rel)
    return found


def _spec(lines: Iterable[str]) -> pathspec.GitIgnoreSpec:
    import pathspec  # only walks outside git and --exclude need it

    return pathspec.GitIgnoreSpec.from_lines(lines)


def _add(
    items: list[FileItem],
    full: str,
    display: str,
    problems: Problems,
    archives: bool,
    root: str | None,
) -> None:
    lower = full.lower()
    if root is not None and os.path.islink(full):
        real = os.path.realpath(full)
        if not os.path.exists(real):
            problems.warnings.append(f"skipped broken symlink: {display}")
            return
        if os.path.commonpath([root, real]) != root:
            # Never read outside the scanned tree through a link (/etc/shadow, ~/.ssh).
            problems.warnings.append(f"skipped symlink out of the scanned tree: {display}")
            return
    if is_archive(lower):
        if archives:
            items.append(FileItem(full, display, _size(full), archive=True))
        return
    if os.path.splitext(lower)[1] in BINARY_EXT:
        return
    try:
        stat = os.stat(full)
    except FileNotFoundError:
        if root is None:
            problems.add(f"no such file: {display}")
        return  # tracked by git but deleted from the working tree
    except OSError as exc:
        problems.add(f"cannot read {display}: {exc.strerror}")
        return
    if stat.st_size and not os.path.isdir(full):
        items.append(FileItem(full, display, stat.st_size))


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _git_listing(root: str) -> list[str] | None:
    """Files git would show under ``root`` (tracked + untracked, not ignored), or None."""
    if not os.path.exists(os.path.join(root, ".git")) and not _inside_git(root):
        return None
    try:
        out = subprocess.run(
            ["git", "-C", root, "ls-files", "-z", "-c", "-o", "--exclude-standard", "--", "."],
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return sorted({name for name in out.decode("utf-8", "surrogateescape").split("\0") if name})


def _inside_git(root: str) -> bool:
    path = Path(root).resolve()
    return any((parent / ".git").exists() for parent in (path, *path.parents))


def _walk(root: str, problems: Problems, *, honour_gitignore: bool) -> list[str]:
    """Relative paths of files under ``root``, applying nested .gitignore files."""
    found: list[str] = []
    specs: list[tuple[str, pathspec.GitIgnoreSpec]] = []

    def ignored(rel: str) -> bool:
        return any(
            rel.startswith(base) and spec.match_file(rel[len(base) :]) for base, spec in specs
        )

    def on_error(exc: OSError) -> None:
        problems.add(f"cannot read {exc.filename}: {exc.strerror}")

    for current, dirs, files in os.walk(root, onerror=on_error):
        rel_dir = os.path.relpath(current, root)
        base = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        if honour_gitignore and ".gitignore" in files:
            try:
                with open(os.path.join(current, ".gitignore"), encoding="utf-8") as handle:
                    specs.append((base, _spec(handle)))
            except (OSError, UnicodeDecodeError) as exc:
                problems.add(f"cannot read {base}.gitignore: {exc}")
        dirs[:] = sorted(d for d in dirs if d != ".git" and not ignored(base + d + "/"))
        found.extend(base + name for name in sorted(files) if not ignored(base + name))
    return found
