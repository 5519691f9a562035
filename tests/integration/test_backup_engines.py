"""A vault moved between engines by backup and restore, in process: SQLite to
PostgreSQL and PostgreSQL to SQLite. Values, versions, the audit trail and the unseal
key all come across (the real-process test does SQLite to PostgreSQL under writers)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from vaultkit import Vault

from keysafe.access.models import RequestContext
from keysafe.server.services import build_services
from keysafe.store.backup import stream_backup
from keysafe.store.engine import make_engine
from keysafe.store.restore import restore

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


async def test_a_vault_moves_to_the_other_engine_and_back_intact(
    vault: Vault, db_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    for i in range(30):
        await vault.svc.secrets.write(vault.root, f"app/k{i}", f"value-{i}")
    await vault.svc.secrets.write(vault.root, "app/k0", "value-0-v2")
    data = b"".join(stream_backup(vault.svc.engine))

    if db_url.startswith("sqlite"):
        other: str = request.getfixturevalue("pg_url")
    else:
        other = f"sqlite:///{tmp_path / 'moved.db'}"
    target = make_engine(other)
    try:
        header = restore(target, io.BytesIO(data))
    finally:
        target.dispose()
    assert header.engine == ("sqlite" if db_url.startswith("sqlite") else "postgresql")

    settings = vault.svc.settings.model_copy(update={"audit_file": None})
    moved = build_services(settings, engine=make_engine(other), unseal_key=vault.unseal_key)
    try:
        assert moved.system.status()["sealed"] is True
        assert moved.system.auto_unseal()  # the same unseal key
        moved.audit.start()
        ctx = RequestContext(moved.tokens.authenticate(vault.root_token), "127.0.0.1", "t")
        assert (await moved.secrets.read(ctx, "app/k0")).value == "value-0-v2"
        assert (await moved.secrets.read(ctx, "app/k0", version=1)).value == "value-0"
        assert (await moved.secrets.read(ctx, "app/k29")).value == "value-29"
        verified = moved.audit.verify()
        assert verified.ok, verified
        assert verified.events >= 31
        # It goes on: a new write gets a new id and a new event chained on the old ones.
        await moved.secrets.write(ctx, "app/new", "n")
        assert moved.audit.verify().ok
    finally:
        moved.close()
