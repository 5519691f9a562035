"""The backup file: round trip on SQLite, every kind of bad file refused before anything
is written, a non-empty or differently migrated target refused, sequences continued."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, insert, select

from keysafe.errors import Conflict, IntegrityError, NotInitialized
from keysafe.store.backup import Snapshot, stream_backup
from keysafe.store.backup_format import CorruptBackup, backup_tables, check_file
from keysafe.store.engine import make_engine, write_txn
from keysafe.store.migrate import known_revisions, upgrade
from keysafe.store.restore import restore
from keysafe.store.tables import secret_versions, secrets, sys_state


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    path = tmp_path_factory.mktemp("backup") / "src.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    with write_txn(engine) as conn:
        conn.execute(insert(sys_state), [{"key": "k", "value": b"\x00\xffbinary"}])
        ids = range(1, 2501)  # more than one batch
        conn.execute(
            insert(secrets),
            [
                {
                    "id": i,
                    "path": f"p/{i}",
                    "current_version": 1,
                    "max_versions": 10,
                    "created_at": i,
                    "updated_at": i,
                }
                for i in ids
            ],
        )
        conn.execute(
            insert(secret_versions),
            [
                {
                    "secret_id": i,
                    "version": 1,
                    "format": 1,
                    "kek_version": 1,
                    "wrapped_dek": b"d",
                    "ciphertext": bytes([i % 256]) * 40,
                    "created_at": i,
                    "created_by": "t",
                    "destroyed": False,
                }
                for i in ids
            ],
        )
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def backup(source: Engine) -> bytes:
    return b"".join(stream_backup(source))


def _target(tmp_path: Path, name: str = "dst.db") -> Engine:
    return make_engine(f"sqlite:///{tmp_path / name}")


def _rows(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    with engine.connect() as conn:
        return {
            t.name: sorted((tuple(r) for r in conn.execute(select(t))), key=repr)
            for t in backup_tables()
        }


def test_round_trip_keeps_every_row_and_continues_ids(
    source: Engine, backup: bytes, tmp_path: Path
) -> None:
    header = check_file(io.BytesIO(backup))
    assert header.tables["secrets"] == 2500
    assert header.schema_revision == known_revisions()[-1]
    assert header.engine == "sqlite"
    target = _target(tmp_path)
    seen: list[int] = []
    restore(target, io.BytesIO(backup), progress=lambda n, total: seen.append(n))
    assert sum(seen) == header.total_rows
    assert _rows(target) == _rows(source)
    with write_txn(target) as conn:  # a new secret gets the next id, no collision
        conn.execute(
            insert(secrets).values(
                path="new", current_version=0, max_versions=1, created_at=0, updated_at=0
            )
        )
        assert conn.execute(select(func.max(secrets.c.id))).scalar() == 2501


BAD = {
    "truncated mid-line": lambda b: b[: len(b) // 2],
    "no footer": lambda b: b[: b.rindex(b'{"end"')],
    "a row dropped": lambda b: b.replace(b"\n", b"\n", 1)[:200] + b[b.index(b"\n", 400) + 1 :],
    "one byte changed": lambda b: b[:300] + bytes([b[300] ^ 1]) + b[301:],
    "data after the end": lambda b: b + b'["x"]\n',
    "another file": lambda b: b"hello world\n",
    "empty": lambda b: b"",
    "newer format": lambda b: b.replace(b'"keysafe_backup":1', b'"keysafe_backup":9', 1),
}


@pytest.mark.parametrize("damage", list(BAD), ids=list(BAD))
def test_bad_files_are_refused_before_anything_is_written(
    backup: bytes, tmp_path: Path, damage: str
) -> None:
    target = _target(tmp_path)
    with pytest.raises(CorruptBackup) as caught:
        restore(target, io.BytesIO(BAD[damage](backup)))
    assert isinstance(caught.value, IntegrityError)  # exit code 8, status 500 class
    assert "\n" not in str(caught.value)
    with target.connect() as conn:  # not even the schema was created
        assert not conn.dialect.has_table(conn, "alembic_version")


def test_a_non_empty_target_is_refused_and_keeps_its_rows(source: Engine, backup: bytes) -> None:
    before = _rows(source)
    with pytest.raises(Conflict, match="not empty"):
        restore(source, io.BytesIO(backup))
    assert _rows(source) == before


def test_a_target_at_another_revision_or_a_newer_backup_is_refused(
    backup: bytes, tmp_path: Path
) -> None:
    older = _target(tmp_path, "older.db")
    upgrade(older, known_revisions()[0])
    with pytest.raises(Conflict, match="revision"):
        restore(older, io.BytesIO(backup))
    newer = backup.replace(
        f'"schema_revision":"{known_revisions()[-1]}"'.encode(), b'"schema_revision":"9999"', 1
    )
    # The checksum covers the header: fix it up as a newer keysafe would have written it.
    import hashlib

    body = newer[: newer.rindex(b'{"end"')]
    rows = sum(1 for line in body.splitlines() if line.startswith(b"["))
    footer = b'{"end":true,"rows":%d,"sha256":"%s"}\n' % (
        rows,
        hashlib.sha256(body).hexdigest().encode(),
    )
    with pytest.raises(Conflict, match="newer"):
        restore(_target(tmp_path, "n.db"), io.BytesIO(body + footer))


def test_an_old_backup_restores_into_a_new_database_and_is_migrated(
    tmp_path: Path,
) -> None:
    first = known_revisions()[0]
    old = _target(tmp_path, "old.db")
    upgrade(old, first)
    with write_txn(old) as conn:
        conn.execute(insert(sys_state), [{"key": "seal", "value": b"s"}])
    # Snapshot reads the tables this version knows, so take the old file by hand: only
    # the tables that existed then, as an older keysafe wrote them.
    with old.connect() as conn:
        present = {t.name for t in backup_tables() if conn.dialect.has_table(conn, t.name)}
    assert "sys_state" in present
    target = _target(tmp_path, "new.db")
    data = _old_style_backup(old, present)
    restore(target, io.BytesIO(data))
    with target.connect() as conn:
        assert conn.execute(select(sys_state.c.value)).scalar() == b"s"
        assert (
            conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
            == (known_revisions()[-1])
        )


def _old_style_backup(engine: Engine, present: set[str]) -> bytes:
    import hashlib

    import orjson

    from keysafe.store.backup_format import RowCodec

    lines = []
    with engine.connect() as conn:
        tables = [t for t in backup_tables() if t.name in present]
        counts = {}
        body = []
        for t in tables:
            cols = [c["name"] for c in conn.dialect.get_columns(conn, t.name)]
            rows = conn.exec_driver_sql(f'SELECT {", ".join(cols)} FROM "{t.name}"').all()  # noqa: S608
            counts[str(t.name)] = len(rows)
            body.append(orjson.dumps({"table": str(t.name), "columns": cols, "rows": len(rows)}))
            codec = RowCodec(t, cols)
            body.extend(codec.encode(r).rstrip(b"\n") for r in rows)
    header = {
        "keysafe_backup": 1,
        "schema_revision": known_revisions()[0],
        "created": "",
        "engine": "sqlite",
        "tables": counts,
    }
    lines = [orjson.dumps(header), *body]
    text = b"".join(line + b"\n" for line in lines)
    total = sum(counts.values())
    end = {"end": True, "rows": total, "sha256": hashlib.sha256(text).hexdigest()}
    return text + orjson.dumps(end) + b"\n"


def test_a_database_without_a_store_cannot_be_backed_up(tmp_path: Path) -> None:
    engine = _target(tmp_path, "blank.db")
    with pytest.raises(NotInitialized), Snapshot(engine):
        pass
