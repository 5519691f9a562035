"""``keysafe operator backup FILE`` and ``keysafe operator restore FILE``.

A backup goes through the server (root token or ``admin`` on ``sys/backup``), or with
``--database-url`` straight from the database, for an operator on the box. It is
written to a private temporary file beside FILE, checked, then renamed: FILE is
either a whole backup or untouched. A restore needs the database itself (the target
is an empty store, which no server can yet authorise anyone for).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import typer

from keysafe.cli.context import state
from keysafe.cli.output import message
from keysafe.errors import InvalidInput

FileArg = Annotated[Path, typer.Argument(help="The backup file.", dir_okay=False)]


def backup(
    ctx: typer.Context,
    file: FileArg,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="Read this database directly (sqlite:///... or postgresql://...) "
            "instead of asking the server.",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace FILE if it exists.")] = False,
) -> None:
    """Write a consistent snapshot of the whole store (values stay encrypted) to FILE,
    0600, with a progress bar on a terminal. Safe while the vault serves writes."""
    from keysafe.store.backup_format import check_file

    if file.exists() and not force:
        raise InvalidInput(f"{file} exists; give --force to replace it")
    tmp = file.with_name(f".{file.name}.{secrets.token_hex(4)}.partial")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise InvalidInput(f"cannot write beside {file}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as fh, _progress("backup") as advance:
            with _backup_chunks(ctx, database_url) as chunks:
                total = 0
                for chunk in chunks:
                    if not total:
                        total = _total_lines(chunk)
                    fh.write(chunk)
                    advance(chunk.count(b"\n"), total)
            fh.flush()
            os.fsync(fh.fileno())
        # A stream cut short (server stopped, connection lost) never becomes FILE.
        with tmp.open("rb") as fh:
            header = check_file(fh)
        os.replace(tmp, file)
        _fsync_dir(file.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    message(
        f"Backup written to {file}: {header.total_rows} rows from {header.engine}, "
        f"schema revision {header.schema_revision}, taken {header.created}."
    )


def restore(
    file: FileArg,
    database_url: Annotated[
        str,
        typer.Option(
            "--database-url",
            help="The empty database to load (sqlite:///... or postgresql://...); "
            "stop every node using it first.",
        ),
    ],
) -> None:
    """Load FILE into an empty store of either engine, all or nothing (a non-empty one
    is refused). Unseal afterwards with the vault's own shares or key."""
    from keysafe.store.engine import make_engine
    from keysafe.store.restore import restore as restore_store

    try:
        fh = file.open("rb")
    except OSError as exc:
        raise InvalidInput(f"cannot read {file}: {exc.strerror}") from exc
    engine = make_engine(database_url)
    try:
        with fh, _progress("restore") as advance:
            header = restore_store(engine, fh, progress=advance)
    finally:
        engine.dispose()
    message(
        f"Restored {header.total_rows} rows (taken {header.created} from {header.engine}, "
        f"schema revision {header.schema_revision}). Start the server and unseal it."
    )


@contextlib.contextmanager
def _backup_chunks(ctx: typer.Context, database_url: str | None) -> Iterator[Iterator[bytes]]:
    if database_url is None:
        with state(ctx).client() as client, client.backup_stream() as chunks:
            yield chunks
        return
    from keysafe.store.backup import stream_backup
    from keysafe.store.engine import make_engine

    if database_url.startswith("sqlite:///"):
        path = Path(database_url.removeprefix("sqlite:///"))
        if not path.is_file():  # never create an empty database just to back it up
            raise InvalidInput(f"no database at {path}")
    engine = make_engine(database_url)
    try:
        yield stream_backup(engine)
    finally:
        engine.dispose()


def _total_lines(first_chunk: bytes) -> int:
    """Lines the file will have, from its header (0 when it cannot tell)."""
    import orjson

    from keysafe.store.backup_format import CorruptBackup, parse_header

    try:
        header = parse_header(orjson.loads(first_chunk.split(b"\n", 1)[0]))
    except (CorruptBackup, orjson.JSONDecodeError):
        return 0
    return header.total_rows + len(header.tables) + 2


@contextlib.contextmanager
def _progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """``advance(done_now, total)``: a bar on stderr when it is a terminal."""
    import sys

    if not sys.stderr.isatty():
        yield lambda _n, _total: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    bar = Progress(
        TextColumn(label), BarColumn(), MofNCompleteColumn(), console=Console(stderr=True)
    )
    with bar:
        task = bar.add_task(label, total=None)

        def advance(n: int, total: int) -> None:
            bar.update(task, advance=n, total=total or None)

        yield advance


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
