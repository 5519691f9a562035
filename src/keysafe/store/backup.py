"""A consistent snapshot of the whole store, streamed as a backup file (backup_format).

Taken online: every table is read in one read-only transaction that sees the database
as it was when the transaction began (PostgreSQL: REPEATABLE READ; SQLite in WAL mode:
a read transaction), so writers carry on and the backup holds exactly the commits made
before it. Rows are fetched in batches through a cursor, so memory stays bounded
whatever the size of the store. Values stay encrypted: rows are copied as stored.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import TracebackType

from sqlalchemy import Connection, Engine, func, select

from keysafe.errors import NotInitialized
from keysafe.store.backup_format import (
    ROWS_PER_BATCH,
    Header,
    RowCodec,
    backup_tables,
    checksummed,
)
from keysafe.store.engine import storage_errors
from keysafe.timefmt import iso_us

__all__ = ["Snapshot", "chunked", "schema_revision", "stream_backup"]


def schema_revision(conn: Connection) -> str | None:
    """The Alembic revision of the store (None: never migrated)."""
    if not conn.dialect.has_table(conn, "alembic_version"):
        return None
    row = conn.exec_driver_sql("SELECT version_num FROM alembic_version").first()
    return str(row[0]) if row is not None else None


class Snapshot:
    """One read-only transaction over the store. ``header`` is ready on entering;
    ``lines()`` yields the backup file. Raises StorageUnavailable when the database
    fails, NotInitialized when it holds no keysafe schema."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn: Connection | None = None
        self.header = Header("", "", engine.dialect.name, {})

    def __enter__(self) -> Snapshot:
        with storage_errors():
            conn = self._engine.connect()
            try:
                if conn.dialect.name == "postgresql":
                    conn = conn.execution_options(
                        isolation_level="REPEATABLE READ", postgresql_readonly=True
                    )
                conn.begin()
                # The first statement fixes the snapshot: the counts below and every row
                # read later come from the same moment.
                revision = schema_revision(conn)
                if revision is None:
                    raise NotInitialized("the database holds no keysafe store")
                counts = {
                    str(t.name): int(conn.execute(select(func.count()).select_from(t)).scalar_one())
                    for t in backup_tables()
                }
            except BaseException:
                conn.close()
                raise
        self._conn = conn
        created = iso_us(time.time_ns() // 1000) or ""
        self.header = Header(revision, created, conn.dialect.name, counts)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()  # ends the read-only transaction (a rollback: nothing to keep)

    def lines(self) -> Iterator[bytes]:
        """The backup file, line by line: header, each table, the checksummed footer."""
        return checksummed(self._tagged())

    def _tagged(self) -> Iterator[tuple[bytes, bool]]:
        import orjson

        conn = self._conn
        assert conn is not None, "use Snapshot as a context manager"
        yield orjson.dumps(self.header.as_json()) + b"\n", False
        for table in backup_tables():
            columns = [str(c.name) for c in table.columns]
            count = self.header.tables[table.name]
            intro = {"table": str(table.name), "columns": columns, "rows": count}
            yield orjson.dumps(intro) + b"\n", False
            codec = RowCodec(table, columns)
            query = select(table).order_by(*table.primary_key.columns)
            seen = 0
            with storage_errors():
                result = conn.execution_options(yield_per=ROWS_PER_BATCH).execute(query)
                for row in result:
                    seen += 1
                    yield codec.encode(row), True
            if seen != count:  # cannot happen inside one snapshot; never write a lie
                raise RuntimeError(f"{table.name}: counted {count} rows, read {seen}")


def chunked(lines: Iterator[bytes], chunk_bytes: int = 256 * 1024) -> Iterator[bytes]:
    """``lines`` joined into chunks of about ``chunk_bytes`` (the first line, the
    header, on its own so that a reader can show it at once)."""
    buf: list[bytes] = []
    size = 0
    first = True
    for line in lines:
        buf.append(line)
        size += len(line)
        if first or size >= chunk_bytes:
            yield b"".join(buf)
            buf, size, first = [], 0, False
    if buf:
        yield b"".join(buf)


def stream_backup(engine: Engine) -> Iterator[bytes]:
    """The whole backup file in chunks, from a snapshot opened on the first ``next``."""
    with Snapshot(engine) as snap:
        yield from chunked(snap.lines())
