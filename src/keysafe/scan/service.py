"""The scan operations: files, git history, the staged diff, a stream.

Work is spread over processes only when there is enough of it to pay for their start-up;
the engine is built once and inherited by forked workers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from keysafe.scan import gitsource
from keysafe.scan.engine import Engine
from keysafe.scan.models import Finding, Location
from keysafe.scan.progress import Progress
from keysafe.scan.sources import (
    Chunk,
    FileItem,
    Problems,
    collect_files,
    iter_archive,
    iter_text_chunks,
    member_chunks,
    read_file_chunks,
)
from keysafe.scan.textcodec import Readable

PARALLEL_BYTES = 8 * 1024 * 1024
PARALLEL_COMMITS = 400
BATCH_BYTES = 2 * 1024 * 1024
T = TypeVar("T")


@dataclass
class ScanOptions:
    """How to collect inputs and how hard to work."""

    no_ignore: bool = False
    archives: bool = False
    exclude: list[str] = field(default_factory=list)
    jobs: int = 0  # 0: decide from the work and the CPU count
    progress: bool = False


@dataclass
class ScanResult:
    """What a scan found, and the problems it met on the way (one line each)."""

    findings: list[Finding] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # inputs that could not be scanned
    warnings: list[str] = field(default_factory=list)  # scanned, with a caveat
    scanned: int = 0  # files, commits or streams
    bytes: int = 0  # of scanned text (for git: of the added lines)

    def sort(self) -> ScanResult:
        self.findings.sort(key=lambda f: (f.file, f.commit or "", f.line, f.column, f.rule))
        return self


# The engine of a worker process. Set once per worker by the pool initializer: workers
# are forked, so it is inherited rather than pickled.
_worker_engine: Engine | None = None


def _init_worker(engine: Engine) -> None:
    global _worker_engine
    _worker_engine = engine


def scan_item(engine: Engine, item: FileItem) -> tuple[list[Finding], list[str]]:
    """Findings in one file or archive, and the problems reading it."""
    problems = Problems()
    findings: list[Finding] = []
    if engine.path_allowed(item.display):
        return findings, problems.messages
    if item.archive:
        for name, data in iter_archive(item.path, item.display, problems):
            for chunk in member_chunks(data):
                findings += _scan_chunk(engine, chunk, name)
        return findings, problems.messages
    try:
        for chunk in read_file_chunks(item.path):
            findings += _scan_chunk(engine, chunk, item.display)
    except OSError as exc:
        problems.add(f"cannot read {item.display}: {exc.strerror or exc}")
    return findings, problems.messages


def _scan_chunk(engine: Engine, chunk: Chunk, name: str) -> list[Finding]:
    where = Location(name, line_offset=chunk.line_offset, column_offset=chunk.column_offset)
    return engine.scan_text(chunk.text, where, chunk.stop)


# A unit of work's answer: findings, problems, progress made, bytes scanned.
Done = tuple[list[Finding], list[str], int, int]


def _scan_batch(batch: list[FileItem]) -> Done:
    assert _worker_engine is not None
    findings: list[Finding] = []
    problems: list[str] = []
    for item in batch:
        found, trouble = scan_item(_worker_engine, item)
        findings += found
        problems += trouble
    size = sum(i.size for i in batch)
    return findings, problems, size, size


def _scan_commits(args: tuple[str, list[str]]) -> Done:
    assert _worker_engine is not None
    repo, commits = args
    errors: list[str] = []
    changes = gitsource.history_changes(repo, commits, errors)
    findings, size = _scan_changes(_worker_engine, changes)
    return findings, errors, len(commits), size


def _scan_changes(
    engine: Engine, changes: Iterator[gitsource.Change], bar: Progress | None = None
) -> tuple[list[Finding], int]:
    """Findings in ``changes`` and the bytes scanned; ``bar`` moves once per commit."""
    findings: list[Finding] = []
    size = 0
    last: str | None = None
    for change in changes:
        if bar is not None and change.location.commit != last:
            last = change.location.commit
            bar.advance(1)
        size += len(change.text)
        if not engine.path_allowed(change.location.path):
            findings += engine.scan_text(change.text, change.location)
    return findings, size


class ScanService:
    """Runs scans with one engine; every method returns a sorted :class:`ScanResult`."""

    def __init__(self, engine: Engine, options: ScanOptions | None = None) -> None:
        self.engine = engine
        self.options = options or ScanOptions()

    def scan_paths(self, targets: list[str]) -> ScanResult:
        """Scan files and directory trees (``.gitignore`` honoured unless told not to)."""
        problems = Problems()
        opts = self.options
        items = collect_files(
            targets,
            problems,
            no_ignore=opts.no_ignore,
            archives=opts.archives,
            exclude=opts.exclude,
        )
        result = ScanResult(
            problems=problems.messages, warnings=problems.warnings, scanned=len(items)
        )
        total = sum(i.size for i in items)
        workers = self._workers(total >= PARALLEL_BYTES and len(items) > 1)
        with Progress(opts.progress, total, "scanning files") as bar:
            if workers <= 1:
                for item in items:
                    found, trouble = scan_item(self.engine, item)
                    result.findings += found
                    result.problems += trouble
                    result.bytes += item.size
                    bar.advance(item.size)
            else:
                self._pool(workers, _scan_batch, _batches(items), result, bar)
        return result.sort()

    def scan_git(self, repo: str) -> ScanResult:
        """Scan every commit of every branch and tag. Raises InvalidInput for a non-repo."""
        result = ScanResult(warnings=gitsource.check_repository(repo))
        commits = gitsource.all_commits(repo)
        result.scanned = len(commits)
        workers = self._workers(len(commits) >= PARALLEL_COMMITS)
        with Progress(self.options.progress, len(commits), "scanning commits") as bar:
            if workers <= 1:
                changes = gitsource.history_changes(repo, commits, result.problems)
                result.findings, result.bytes = _scan_changes(self.engine, changes, bar)
            else:
                size = max(50, len(commits) // (workers * 4))
                chunks = [(repo, commits[i : i + size]) for i in range(0, len(commits), size)]
                self._pool(workers, _scan_commits, chunks, result, bar)
        return result.sort()

    def scan_staged(self, repo: str) -> ScanResult:
        """Scan what the next commit would add (the index against HEAD)."""
        gitsource.git(repo, "rev-parse", "--git-dir")
        result = ScanResult(scanned=1)
        changes = gitsource.staged_changes(repo, result.problems)
        result.findings, result.bytes = _scan_changes(self.engine, changes)
        return result.sort()

    def scan_stream(self, stream: Readable, name: str = "-") -> ScanResult:
        """Scan a byte stream (stdin, a pipe) chunk by chunk in bounded memory."""
        result = ScanResult(scanned=1)
        counted = _Counted(stream)
        for chunk in iter_text_chunks(counted, chunk=256 * 1024):
            result.findings += _scan_chunk(self.engine, chunk, name)
        result.bytes = counted.total
        return result.sort()

    def _workers(self, worth_it: bool) -> int:
        if self.options.jobs:
            return self.options.jobs
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        # On two CPUs the workers' start-up, pickling and the busy parent cost more than
        # the second CPU brings (measured: slower than one process, 2.4x the memory).
        if not worth_it or not hasattr(os, "fork") or cpus < 3:
            return 1
        return min(8, cpus)

    def _pool(
        self,
        workers: int,
        func: Callable[[T], Done],
        work: list[T],
        result: ScanResult,
        bar: Progress,
    ) -> None:
        # Imported here: small scans never pay for the multiprocessing machinery.
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_worker, initargs=(self.engine,)
        ) as pool:
            for findings, problems, done, size in pool.map(func, work):
                result.findings += findings
                result.problems += problems
                result.bytes += size
                bar.advance(done)


class _Counted:
    """A stream that counts the bytes read from it."""

    def __init__(self, stream: Readable) -> None:
        self._stream = stream
        self.total = 0

    def read(self, size: int = -1, /) -> bytes:
        data = self._stream.read(size)
        self.total += len(data)
        return data


def _batches(items: list[FileItem]) -> list[list[FileItem]]:
    batches: list[list[FileItem]] = []
    current: list[FileItem] = []
    size = 0
    for item in items:
        current.append(item)
        size += item.size
        if size >= BATCH_BYTES:
            batches.append(current)
            current, size = [], 0
    if current:
        batches.append(current)
    return batches
