"""The embedded SQLite database is private to its owner: folder 0700, files 0600."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sqlalchemy import text

from keysafe.store.engine import make_engine


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_database_folder_and_files_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)  # the usual umask, which made them 0755/0644
    try:
        db = tmp_path / "home" / "data" / "keysafe.db"
        engine = make_engine(f"sqlite:///{db}")
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
        files = [db, Path(f"{db}-wal"), Path(f"{db}-shm")]
        assert all(f.exists() for f in files)
        assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}
        assert _mode(db.parent) == 0o700
        assert _mode(db.parent.parent) == 0o700
        engine.dispose()
    finally:
        os.umask(old)


def test_loose_files_of_an_older_version_are_tightened(tmp_path: Path) -> None:
    db = tmp_path / "keysafe.db"
    engine = make_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    engine.dispose()
    db.chmod(0o644)
    make_engine(f"sqlite:///{db}").dispose()
    assert _mode(db) == 0o600
