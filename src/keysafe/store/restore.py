"""Load a backup file into an empty store of either engine, all or nothing.

The schema is brought to the backup's revision first (a new database is created at
that revision; an existing one must already be there), the rows are inserted in one
transaction, and only then are newer migrations run. A corrupt or truncated file is
found before anything is written (``check_file``) and, should the file change while it
is read, again at its end, which rolls the transaction back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO

from sqlalchemy import Connection, Engine, Integer, select, text

from keysafe.errors import Conflict
from keysafe.store.backup import schema_revision
from keysafe.store.backup_format import Header, backup_tables, check_file, read_tables
from keysafe.store.engine import read_conn, write_txn
from keysafe.store.migrate import known_revisions, lock_for_migrations, upgrade

__all__ = ["restore"]


def restore(
    engine: Engine, fh: IO[bytes], progress: Callable[[int, int], None] | None = None
) -> Header:
    """Load the backup in ``fh`` (seekable) into the empty store behind ``engine``.

    Raises CorruptBackup (an IntegrityError) for a bad file, Conflict when the store is
    not empty or its schema is at another revision, StorageUnavailable when the
    database fails. ``progress(n, total)`` is told of each batch of n rows written."""
    header = check_file(fh)
    fh.seek(0)
    known = known_revisions()
    if header.schema_revision not in known:
        raise Conflict(
            f"the backup's schema revision {header.schema_revision} is newer than this "
            f"keysafe knows ({known[-1]}): restore it with the version that made it"
        )
    with read_conn(engine) as conn:
        current = schema_revision(conn)
    if current is None:
        upgrade(engine, header.schema_revision)
    elif current != header.schema_revision:
        raise Conflict(
            f"the target store's schema is at revision {current}, the backup's at "
            f"{header.schema_revision}: restore into a new, empty database"
        )
    with write_txn(engine) as conn:
        # No node may migrate or start a store here while the rows go in.
        lock_for_migrations(conn)
        _refuse_non_empty(conn)
        _, tables = read_tables(fh)
        for part in tables:
            # Only the file's columns, and no client-side defaults: a backup made before
            # a column existed is loaded at its own revision, then migrated. Rows go to
            # the driver as they are (bytes, ints, text, bools), skipping per-row work.
            sql = _insert_sql(conn, part.table.name, part.columns)
            for batch in part.batches:
                conn.exec_driver_sql(sql, batch)
                if progress is not None:
                    progress(len(batch), header.total_rows)
        _advance_sequences(conn)
    upgrade(engine)
    return header


def _insert_sql(conn: Connection, table: str, columns: list[str]) -> str:
    quote = conn.dialect.identifier_preparer.quote
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    names = ", ".join(quote(c) for c in columns)
    marks = ", ".join([mark] * len(columns))
    return f"INSERT INTO {quote(table)} ({names}) VALUES ({marks})"  # noqa: S608 - quoted names


def _refuse_non_empty(conn: Connection) -> None:
    # Tables a later revision adds do not exist yet when an older backup is loaded.
    present = [t for t in backup_tables() if conn.dialect.has_table(conn, t.name)]
    used = [t.name for t in present if conn.execute(select(1).select_from(t).limit(1)).first()]
    if used:
        shown = ", ".join(used[:5]) + (" ..." if len(used) > 5 else "")
        raise Conflict(
            f"the target store is not empty (rows in {shown}): restore only into a new, "
            "empty database (nothing was written)"
        )


def _advance_sequences(conn: Connection) -> None:
    """PostgreSQL: serial columns continue after the restored ids (SQLite's rowids and
    AUTOINCREMENT counters follow explicit inserts by themselves)."""
    if conn.dialect.name != "postgresql":
        return
    for table in backup_tables():
        column = table.autoincrement_column
        if column is None or not isinstance(column.type, Integer):
            continue
        conn.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence(:t, :c), "  # noqa: S608 - names from metadata
                f"COALESCE((SELECT MAX({column.name}) FROM {table.name}), 0) + 1, false)"
            ),
            {"t": table.name, "c": column.name},
        )
    # The audit trail's order numbers come from a sequence of their own (one per
    # database, shared by every node's chains), not from a serial column.
    conn.execute(
        text(
            "SELECT setval('audit_events_seq',"
            " COALESCE((SELECT MAX(seq) FROM audit_events), 0) + 1, false)"
            " WHERE to_regclass('audit_events_seq') IS NOT NULL"
        )
    )
