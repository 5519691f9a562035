"""The backup file format: JSON lines, a header, each table's rows, a checksum.

::

    {"keysafe_backup": 1, "schema_revision": "0016", "created": "...", "engine": ...,
     "tables": {"sys_state": 3, "secrets": 100000, ...}}      <- header
    {"table": "secrets", "columns": ["id", "path", ...], "rows": 100000}
    [1, "payments/prod/KEY", ...]                             <- one row a line
    ...
    {"end": true, "rows": 123456, "sha256": "<hex>"}          <- footer

Binary columns are base64 text; every other value is JSON as the driver returns it.
The footer's SHA-256 covers every byte before it: a truncated or altered file is
refused before anything is written. It finds corruption, not forgery: whoever can
rewrite a backup can recompute it, so a backup is kept like the database itself.
The format version and the key names are persisted: only ever add.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any, Final

import orjson
from sqlalchemy import LargeBinary, Table

from keysafe.errors import IntegrityError
from keysafe.store.tables import metadata

FORMAT_VERSION: Final = 1
MAGIC: Final = "keysafe_backup"
# Per-node state that must not travel: who is up (each node registers itself again)
# and cache announcements that live a minute.
EPHEMERAL_TABLES: Final = frozenset({"nodes", "invalidations"})
ROWS_PER_BATCH: Final = 1000
_MAX_LINE = 64 * 1024 * 1024  # no single row comes close; a bound for a corrupt file


def backup_tables() -> list[Table]:
    """The tables a backup holds, parents before children (foreign keys)."""
    return [t for t in metadata.sorted_tables if t.name not in EPHEMERAL_TABLES]


class CorruptBackup(IntegrityError):
    """The file is not a complete keysafe backup (truncated, altered, or another file)."""


@dataclass(frozen=True, slots=True)
class Header:
    schema_revision: str
    created: str
    engine: str
    tables: dict[str, int]

    @property
    def total_rows(self) -> int:
        return sum(self.tables.values())

    def as_json(self) -> dict[str, Any]:
        return {
            MAGIC: FORMAT_VERSION,
            "schema_revision": self.schema_revision,
            "created": self.created,
            "engine": self.engine,
            "tables": self.tables,
        }


class RowCodec:
    """Rows of one table to JSON lines and back (binary columns as base64)."""

    def __init__(self, table: Table, columns: Iterable[str]) -> None:
        self.columns = list(columns)
        self._binary = [
            i for i, name in enumerate(self.columns) if isinstance(table.c[name].type, LargeBinary)
        ]

    def encode(self, row: Iterable[Any]) -> bytes:
        values = list(row)
        for i in self._binary:
            if values[i] is not None:
                values[i] = base64.b64encode(values[i]).decode("ascii")
        return orjson.dumps(values) + b"\n"

    def decode(self, values: list[Any]) -> tuple[Any, ...]:
        """One row's values, in ``columns`` order, as the driver takes them."""
        if len(values) != len(self.columns):
            raise CorruptBackup("backup file is corrupt: a row has the wrong number of values")
        for i in self._binary:
            if values[i] is not None:
                try:
                    values[i] = base64.b64decode(values[i], validate=True)
                except (binascii.Error, TypeError, ValueError) as exc:
                    raise CorruptBackup("backup file is corrupt: bad binary value") from exc
        return tuple(values)


def checksummed(lines: Iterable[tuple[bytes, bool]]) -> Iterator[bytes]:
    """Each line of ``lines`` ((bytes, is_row)) as given, then the footer."""
    digest = hashlib.sha256()
    rows = 0
    for line, is_row in lines:
        digest.update(line)
        rows += is_row
        yield line
    yield orjson.dumps({"end": True, "rows": rows, "sha256": digest.hexdigest()}) + b"\n"


def _lines(fh: IO[bytes]) -> Iterator[bytes]:
    while line := fh.readline(_MAX_LINE):
        if not line.endswith(b"\n"):
            raise CorruptBackup("backup file is truncated (its last line is incomplete)")
        yield line


def _parse(line: bytes) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise CorruptBackup("backup file is corrupt: a line is not JSON") from exc


def _is_footer(doc: Any) -> bool:
    return isinstance(doc, dict) and doc.get("end") is True


def check_file(fh: IO[bytes]) -> Header:
    """Read the whole file once: its header, and that its footer's checksum matches.
    Raises CorruptBackup (nothing has been written yet)."""
    digest = hashlib.sha256()
    header: Header | None = None
    footer: Any = None
    for line in _lines(fh):
        if footer is not None:
            raise CorruptBackup("backup file is corrupt: data after its end")
        if line.startswith(b'{"end"'):
            doc = _parse(line)
            if _is_footer(doc):
                footer = doc
                continue
        if header is None:
            try:
                first = orjson.loads(line)
            except orjson.JSONDecodeError:
                first = None
            header = parse_header(first)
        digest.update(line)
    if header is None:
        raise CorruptBackup("not a keysafe backup: the file is empty")
    if footer is None:
        raise CorruptBackup("backup file is truncated (no end marker and checksum)")
    want = footer.get("sha256")
    if not isinstance(want, str) or want != digest.hexdigest():
        raise CorruptBackup("backup file is corrupt: its checksum does not match")
    return header


def parse_header(doc: Any) -> Header:
    if not isinstance(doc, dict) or MAGIC not in doc:
        raise CorruptBackup("not a keysafe backup (no keysafe_backup header)")
    if doc[MAGIC] != FORMAT_VERSION:
        raise CorruptBackup(
            f"backup format {doc[MAGIC]!r} is not one this version reads ({FORMAT_VERSION})"
        )
    tables = doc.get("tables")
    revision = doc.get("schema_revision")
    if not isinstance(tables, dict) or not isinstance(revision, str):
        raise CorruptBackup("backup file is corrupt: its header lacks tables or revision")
    return Header(revision, str(doc.get("created", "")), str(doc.get("engine", "")), tables)


@dataclass(frozen=True, slots=True)
class TableRows:
    """One table's rows, decoded, in batches of at most ROWS_PER_BATCH."""

    table: Table
    columns: list[str]
    batches: Iterator[list[tuple[Any, ...]]]


def read_tables(fh: IO[bytes]) -> tuple[Header, Iterator[TableRows]]:
    """The header, then each table's rows as they are read (bounded memory). The
    checksum is checked again at the end: the iterator raises CorruptBackup when the
    file changed since ``check_file``, so that the caller's transaction rolls back."""
    lines = _lines(fh)
    first = next(lines, None)
    if first is None:
        raise CorruptBackup("not a keysafe backup: the file is empty")
    try:
        header = parse_header(orjson.loads(first))
    except orjson.JSONDecodeError:
        raise CorruptBackup("not a keysafe backup (no keysafe_backup header)") from None
    digest = hashlib.sha256(first)
    known = {t.name: t for t in backup_tables()}

    def tables() -> Iterator[TableRows]:
        for line in lines:
            doc = _parse(line)
            if _is_footer(doc):
                if doc.get("sha256") != digest.hexdigest():
                    raise CorruptBackup("backup file is corrupt: its checksum does not match")
                if next(lines, None) is not None:
                    raise CorruptBackup("backup file is corrupt: data after its end")
                return
            digest.update(line)
            if not isinstance(doc, dict) or doc.get("table") not in known:
                raise CorruptBackup("backup file is corrupt: expected a table, found other data")
            table = known[doc["table"]]
            try:
                codec = RowCodec(table, doc["columns"])
                count = int(doc["rows"])
            except (KeyError, TypeError, ValueError) as exc:
                raise CorruptBackup(f"backup file is corrupt: table {table.name}") from exc
            yield TableRows(table, codec.columns, _batches(lines, digest, codec, count))
        raise CorruptBackup("backup file is truncated (no end marker and checksum)")

    return header, tables()


def _batches(
    lines: Iterator[bytes], digest: Any, codec: RowCodec, count: int
) -> Iterator[list[tuple[Any, ...]]]:
    batch: list[tuple[Any, ...]] = []
    for _ in range(count):
        line = next(lines, None)
        if line is None:
            raise CorruptBackup("backup file is truncated (rows missing)")
        digest.update(line)
        values = _parse(line)
        if not isinstance(values, list):
            raise CorruptBackup("backup file is corrupt: a row is not a list")
        batch.append(codec.decode(values))
        if len(batch) >= ROWS_PER_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch
