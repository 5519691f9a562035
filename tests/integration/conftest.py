"""Services wired on a real database, parametrised over SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from vaultkit import Vault

from keysafe.config import load_settings
from keysafe.server.services import build_services
from keysafe.store.engine import make_engine
from keysafe.store.migrate import upgrade
from keysafe.system.service import MODE_KEY


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'keysafe.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def vault(engine: Engine, tmp_path: Path) -> Iterator[Vault]:
    settings = load_settings(home=tmp_path / "home", audit_file=tmp_path / "audit.jsonl")
    bootstrap = build_services(settings, engine=engine)
    result = bootstrap.system.initialize(1, 1, mode=MODE_KEY)
    svc = build_services(settings, engine=engine, unseal_key=result.shares[0])
    assert svc.system.auto_unseal()
    svc.audit.start()
    yield Vault(svc, result.root_token, result.shares[0])
    svc.close()
