"""The apikey rotator on the real key service (SQLite and PostgreSQL): roll with grace,
the new key works at once, the old one until retired, rollback reinstates it."""

from __future__ import annotations

import pytest
from sqlalchemy import update
from vaultkit import Vault

from keysafe.errors import RotationFailed, Unauthenticated
from keysafe.rotation.rotators.apikey import ApiKeyRotator
from keysafe.rotation.rotators.base import RotationContext
from keysafe.store.engine import write_txn
from keysafe.store.tables_rotation import rotation_policies

pytestmark = pytest.mark.anyio

PATH = "payments/prod/WORKER_KEY"


def _issue(vault: Vault) -> str:
    keys = vault.svc.keys
    with keys.write_txn() as conn:
        keys.create_service(conn, "worker", [], "", "test", holder=None)
        issued = keys.create(
            conn,
            service="worker",
            policy_names=None,
            cidrs=[],
            expires_in_seconds=86400,
            rate_limit=None,
            description="rotated",
            creator="test",
            holder=None,
        )
    return issued.key


def _live(vault: Vault, key: str) -> bool:
    vault.svc.keys._cache.clear()  # see the database, not the 1 s lookup cache
    try:
        vault.svc.keys.verify(key, "127.0.0.1")
    except Unauthenticated:
        return False
    return True


async def test_rotate_then_retire_after_grace(vault: Vault) -> None:
    old = _issue(vault)
    await vault.svc.secrets.write(vault.root, PATH, old)
    rot = vault.svc.rotation
    await rot.set_policy(
        vault.root, PATH, rotator="apikey", options={}, every_seconds=30 * 86400, grace_seconds=3600
    )
    run = await rot.rotate(vault.root, PATH)
    assert run["outcome"] == "ok"
    new = (await vault.svc.secrets.read(vault.root, PATH)).value
    assert new.startswith("ks_live_")
    assert new != old
    assert _live(vault, new)
    assert _live(vault, old)  # the grace period
    with write_txn(vault.svc.engine) as conn:
        conn.execute(update(rotation_policies).values(retire_at=0))
    done = await rot.run_due()
    assert done.claimed == 1
    assert not _live(vault, old)
    assert _live(vault, new)
    status = (await rot.get_policy(vault.root, PATH))["runs"][0]
    assert status["step"] == "retired"


def test_rollback_reinstates_the_old_key(vault: Vault) -> None:
    old = _issue(vault)
    rotator = ApiKeyRotator(vault.svc.keys, vault.svc.engine, vault.svc.clock)

    def ctx(step: str) -> RotationContext:
        return RotationContext(
            PATH,
            {"service": "worker"},
            old,
            lambda p: "",
            grace_seconds=60,
            extra={"run_id": "r", "step": step},
        )

    new = rotator.generate(ctx("generate"))
    rotator.apply(ctx("apply"), new)
    rotator.apply(ctx("apply"), new)  # idempotent
    rotator.verify(ctx("verify"), new)
    assert _live(vault, new)
    rotator.apply(ctx("rollback"), old)  # restore: the successor dies, no grace limit left
    assert not _live(vault, new)
    assert _live(vault, old)
    with pytest.raises(RotationFailed, match="not live"):
        rotator.verify(ctx("verify"), new)
    rotator.retire(ctx("retire"), old)
    rotator.retire(ctx("retire"), old)  # idempotent
    assert not _live(vault, old)


def test_current_value_that_is_not_a_key(vault: Vault) -> None:
    rotator = ApiKeyRotator(vault.svc.keys, vault.svc.engine, vault.svc.clock)
    ctx = RotationContext(PATH, {}, "not-a-key", lambda p: "", extra={"step": "apply"})
    with pytest.raises(RotationFailed, match="not a live keysafe API key"):
        rotator.apply(ctx, rotator.generate(ctx))
