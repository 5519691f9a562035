"""The secrets service on a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update
from vaultkit import Vault

from keysafe.access.models import Principal
from keysafe.errors import (
    CasMismatch,
    Forbidden,
    IntegrityError,
    InvalidInput,
    NotFound,
    ValueTooLarge,
)
from keysafe.store.engine import write_txn
from keysafe.store.tables import audit_events, secret_versions, secrets

pytestmark = pytest.mark.anyio


async def test_versions_read_latest_and_given(vault: Vault) -> None:
    s = vault.svc.secrets
    assert (await s.write(vault.root, "payments/dev/DB", "one")).version == 1
    assert (await s.write(vault.root, "payments/dev/DB", "two")).version == 2
    latest = await s.read(vault.root, "payments/dev/DB")
    assert (latest.version, latest.value) == (2, "two")
    assert (await s.read(vault.root, "payments/dev/DB", 1)).value == "one"
    with pytest.raises(NotFound, match="no version 9"):
        await s.read(vault.root, "payments/dev/DB", 9)
    with pytest.raises(NotFound, match="no secret"):
        await s.read(vault.root, "payments/dev/NOPE")


async def test_unicode_and_max_size(vault: Vault) -> None:
    s = vault.svc.secrets
    await s.write(vault.root, "a/b", "pässwörd ☃\n\x00end")
    assert (await s.read(vault.root, "a/b")).value == "pässwörd ☃\n\x00end"
    await s.write(vault.root, "a/big", "x" * 64 * 1024)
    with pytest.raises(ValueTooLarge):
        await s.write(vault.root, "a/big", "x" * (64 * 1024 + 1))
    assert (await s.read(vault.root, "a/big")).version == 1


@pytest.mark.parametrize(
    "path", ["", "/a", "a/", "a//b", "a/../b", "a/b c", "a/b:c", "ä/b", "a/" + "x" * 600]
)
async def test_malformed_paths_are_refused(vault: Vault, path: str) -> None:
    with pytest.raises(InvalidInput):
        await vault.svc.secrets.write(vault.root, path, "v")


async def test_check_and_set(vault: Vault) -> None:
    s = vault.svc.secrets
    await s.write(vault.root, "k/v", "a", cas=0)
    with pytest.raises(CasMismatch):
        await s.write(vault.root, "k/v", "b", cas=0)
    with pytest.raises(CasMismatch) as info:
        await s.write(vault.root, "k/v", "b", cas=5)
    assert info.value.extra["current_version"] == 1
    await s.write(vault.root, "k/v", "b", cas=1)
    assert (await s.read(vault.root, "k/v")).value == "b"


async def test_list_never_returns_values_unless_asked(vault: Vault) -> None:
    s = vault.svc.secrets
    for path in ("p/dev/A", "p/dev/B", "p/dev/sub/C", "p/prod/D", "p_x/E"):
        await s.write(vault.root, path, "secret-" + path)
    items = await s.list_paths(vault.root, "p/")
    assert [i["path"] for i in items] == ["p/dev/A", "p/dev/B", "p/dev/sub/C", "p/prod/D"]
    assert all("value" not in i for i in items)
    flat = await s.list_paths(vault.root, "p/dev/", recursive=False, values=True)
    assert {i["path"]: i["value"] for i in flat} == {
        "p/dev/A": "secret-p/dev/A",
        "p/dev/B": "secret-p/dev/B",
    }


async def test_listing_is_case_sensitive(vault: Vault) -> None:
    """SQLite's LIKE ignores case: ``APP/DEV/`` must not list ``app/dev/*``."""
    s = vault.svc.secrets
    for path in ("app/dev/KEY", "APP/DEV/OTHER", "App/dev/THIRD", "app/devx/FOURTH"):
        await s.write(vault.root, path, "v")
    assert [i["path"] for i in await s.list_paths(vault.root, "APP/DEV/")] == ["APP/DEV/OTHER"]
    assert [i["path"] for i in await s.list_paths(vault.root, "app/dev/")] == ["app/dev/KEY"]
    assert [i["path"] for i in await s.list_paths(vault.root, "app/dev")] == [
        "app/dev/KEY",
        "app/devx/FOURTH",
    ]
    assert await s.list_paths(vault.root, "aPP/") == []
    assert len(await s.list_paths(vault.root, "")) == 4


async def test_history_rollback_delete_undelete_destroy(vault: Vault) -> None:
    s = vault.svc.secrets
    for value in ("v1", "v2", "v3"):
        await s.write(vault.root, "h/x", value)
    rolled = await s.rollback(vault.root, "h/x", 1)
    assert rolled.version == 4
    assert (await s.read(vault.root, "h/x")).value == "v1"
    await s.delete(vault.root, "h/x", None)
    with pytest.raises(NotFound, match="deleted"):
        await s.read(vault.root, "h/x")
    await s.undelete(vault.root, "h/x", [4])
    assert (await s.read(vault.root, "h/x")).value == "v1"
    await s.destroy(vault.root, "h/x", [2])
    with pytest.raises(NotFound, match="destroyed"):
        await s.read(vault.root, "h/x", 2)
    history = await s.history(vault.root, "h/x")
    assert [v["destroyed"] for v in history["versions"]] == [False, True, False, False]
    with vault.svc.engine.connect() as conn:
        row = conn.execute(
            select(secret_versions.c.ciphertext, secret_versions.c.wrapped_dek).where(
                secret_versions.c.version == 2
            )
        ).one()
    assert row.ciphertext is None
    assert row.wrapped_dek is None
    with pytest.raises(NotFound):
        await s.destroy(vault.root, "h/x", [99])


async def test_max_versions_prunes_old_versions(vault: Vault) -> None:
    s = vault.svc.secrets
    await s.write(vault.root, "m/x", "v1")
    await s.set_metadata(
        vault.root, "m/x", {"max_versions": 3, "owner": "team-a", "tags": {"env": "dev"}}
    )
    for i in range(2, 7):
        await s.write(vault.root, "m/x", f"v{i}")
    versions = [v["version"] for v in (await s.history(vault.root, "m/x"))["versions"]]
    assert versions == [4, 5, 6]
    meta = await s.metadata(vault.root, "m/x")
    assert meta["owner"] == "team-a"
    assert meta["tags"] == {"env": "dev"}
    with pytest.raises(InvalidInput):
        await s.set_metadata(vault.root, "m/x", {"expires_at": "not a date"})


async def test_scoped_tokens(vault: Vault) -> None:
    s = vault.svc.secrets
    await s.write(vault.root, "team/a/X", "x")
    await s.write(vault.root, "team/b/Y", "y")
    reader = vault.context_for(Principal("tok_r", "scoped", "read", "team/a/", None))
    assert (await s.read(reader, "team/a/X")).value == "x"
    with pytest.raises(Forbidden):
        await s.read(reader, "team/b/Y")
    with pytest.raises(Forbidden):
        await s.write(reader, "team/a/X", "new")
    listed = await s.list_paths(reader, "team/")
    assert [i["path"] for i in listed] == ["team/a/X"]


async def test_moved_ciphertext_fails_to_decrypt(vault: Vault) -> None:
    s = vault.svc.secrets
    await s.write(vault.root, "victim/KEY", "victim-value")
    await s.write(vault.root, "attacker/KEY", "attacker-value")
    with write_txn(vault.svc.engine) as conn:
        ids = dict(conn.execute(select(secrets.c.path, secrets.c.id)).all())
        src = conn.execute(
            select(secret_versions).where(secret_versions.c.secret_id == ids["attacker/KEY"])
        ).one()
        conn.execute(
            update(secret_versions)
            .where(secret_versions.c.secret_id == ids["victim/KEY"])
            .values(
                wrapped_dek=src.wrapped_dek, ciphertext=src.ciphertext, kek_version=src.kek_version
            )
        )
    with pytest.raises(IntegrityError, match="integrity check"):
        await s.read(vault.root, "victim/KEY")


async def test_flipped_bit_fails_to_decrypt(vault: Vault) -> None:
    s = vault.svc.secrets
    await s.write(vault.root, "t/KEY", "value")
    with write_txn(vault.svc.engine) as conn:
        row = conn.execute(select(secret_versions)).one()
        broken = bytearray(row.ciphertext)
        broken[-1] ^= 1
        conn.execute(update(secret_versions).values(ciphertext=bytes(broken)))
    with pytest.raises(IntegrityError):
        await s.read(vault.root, "t/KEY")


async def test_every_operation_is_audited_without_values(vault: Vault) -> None:
    s = vault.svc.secrets
    await s.write(vault.root, "aud/KEY", "TOPSECRET-VALUE")
    await s.read(vault.root, "aud/KEY")
    with pytest.raises(NotFound):
        await s.read(vault.root, "aud/MISSING")
    reader = vault.context_for(Principal("tok_r", "scoped", "read", "other/", None))
    with pytest.raises(Forbidden):
        await s.read(reader, "aud/KEY")
    with vault.svc.engine.connect() as conn:
        rows = conn.execute(select(audit_events).order_by(audit_events.c.seq)).all()
    summary = [(r.operation, r.path, r.outcome) for r in rows if r.path != "sys/audit"]
    assert summary == [
        ("secret:write", "aud/KEY", "ok"),
        ("secret:read", "aud/KEY", "ok"),
        ("secret:read", "aud/MISSING", "error"),
        ("secret:read", "aud/KEY", "denied"),
    ]
    assert rows[-1].actor == "tok_r"
    assert all("TOPSECRET" not in str(tuple(r)) for r in rows)
    assert vault.svc.audit.verify().ok


async def test_rotate_key_and_rewrap(vault: Vault) -> None:
    s = vault.svc.secrets
    for i in range(5):
        await s.write(vault.root, f"r/K{i}", f"value-{i}")
    assert vault.svc.system.rotate_key() == 2
    await s.write(vault.root, "r/NEW", "new")
    assert (await s.read(vault.root, "r/K0")).value == "value-0"
    done, remaining, total = s.rewrap_batch(3)
    assert (done, remaining, total) == (3, 2, 6)
    assert s.rewrap_batch(100)[:2] == (2, 0)
    with vault.svc.engine.connect() as conn:
        assert {r.kek_version for r in conn.execute(select(secret_versions.c.kek_version))} == {2}
    for i in range(5):
        assert (await s.read(vault.root, f"r/K{i}")).value == f"value-{i}"


async def test_second_init_is_refused(vault: Vault) -> None:
    from keysafe.errors import AlreadyInitialized

    with pytest.raises(AlreadyInitialized):
        vault.svc.system.initialize(5, 3)
    assert (await vault.svc.secrets.write(vault.root, "still/works", "v")).version == 1


async def test_an_operator_seal_survives_restarts(vault: Vault) -> None:
    from keysafe.server.services import build_services

    vault.svc.system.seal()
    restarted = build_services(
        vault.svc.settings, engine=vault.svc.engine, unseal_key=vault.unseal_key
    )
    assert restarted.system.auto_unseal() is False
    assert restarted.barrier.sealed
    restarted.system.unseal(key=vault.unseal_key)
    assert not restarted.barrier.sealed
    again = build_services(vault.svc.settings, engine=vault.svc.engine, unseal_key=vault.unseal_key)
    assert again.system.auto_unseal() is True
