"""An initialised, unsealed vault in this process, for the benchmarks that drive the
services directly (rotation, leases): SQLite in a temporary directory, or a fresh schema
of the machine's PostgreSQL (``KEYSAFE_TEST_PG_URL``)."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg

from keysafe.access.models import RequestContext
from keysafe.config import load_settings
from keysafe.server.services import Services, build_services
from keysafe.store.engine import make_engine
from keysafe.store.migrate import upgrade
from keysafe.system.service import MODE_KEY

PG = os.environ.get("KEYSAFE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def vault(store: str, tmp: Path, schema: str) -> tuple[Services, RequestContext]:
    """Services over a new vault (audit running) and a root request context."""
    if store == "sqlite":
        url = f"sqlite:///{tmp / 'keysafe.db'}"
    else:
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        url = f"{PG}?options=-csearch_path%3D{schema}"
    engine = make_engine(url)
    upgrade(engine)
    settings = load_settings(home=tmp / "home")
    result = build_services(settings, engine=engine).system.initialize(1, 1, mode=MODE_KEY)
    svc = build_services(settings, engine=engine, unseal_key=result.shares[0])
    assert svc.system.auto_unseal()
    svc.audit.start()
    root = svc.tokens.authenticate(result.root_token)
    return svc, RequestContext(root, "127.0.0.1", "bench")
