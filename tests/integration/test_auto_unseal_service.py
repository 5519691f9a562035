"""Auto-unseal and unseal-migrate in process, on SQLite and PostgreSQL, with a real
SoftHSM2 token: the storage side (wrapped root key, seal config, keyring under a new
root key) in one transaction, and a second process following a migration."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine
from unsealkit import softhsm

from keysafe.config import load_settings
from keysafe.crypto.envelope import DecryptionFailed
from keysafe.crypto.keyring import Keyring
from keysafe.errors import InvalidInput, UnsealSourceFailed
from keysafe.server.services import build_services
from keysafe.system.migrate import TO_SHAMIR, TO_SOURCE, migrate


def test_init_migrate_and_follow(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hsm = softhsm(tmp_path)
    for name, value in hsm.env().items():
        monkeypatch.setenv(name, value)
    settings = load_settings(home=tmp_path / "home")
    node = build_services(settings, engine=engine)
    other = build_services(settings, engine=engine)  # a second process of the same node
    try:
        init = node.system.initialize(3, 2)
        assert init.recovery
        assert not node.barrier.sealed  # unsealed by the HSM right after init
        assert other.system.auto_unseal()
        # Recovery shares rebuild a key that opens nothing.
        from keysafe.crypto import rootkey
        from keysafe.store.engine import read_conn

        with read_conn(engine) as conn:
            blob = node.system._get(conn, "keyring")
        assert blob is not None
        with pytest.raises(DecryptionFailed):
            Keyring.open_with(rootkey.combine(init.shares[:2]), blob)
        with pytest.raises(InvalidInput):
            migrate(node.system, TO_SHAMIR, [init.shares[0]], 2, 2)  # below the threshold
        assert node.system.status()["unseal_mode"] == "pkcs11"

        shamir = migrate(node.system, TO_SHAMIR, init.shares[1:], 2, 2)
        assert not shamir.recovery
        assert node.system.status()["unseal_mode"] == "shamir"
        # The other process cannot open the new keyring with its old root key and has no
        # way to the new one: it seals (fail closed).
        other.system.follow_seal_state()
        assert other.barrier.sealed

        hsm_tokens = hsm.remove_token()
        with pytest.raises(UnsealSourceFailed, match="token not found"):
            migrate(node.system, TO_SOURCE, shamir.shares, 3, 2)
        assert node.system.status()["unseal_mode"] == "shamir"  # nothing changed
        hsm.put_back(hsm_tokens)
        back = migrate(node.system, TO_SOURCE, shamir.shares, 3, 2)
        assert back.recovery
        # Now the other process follows through the HSM.
        other.system.retry.succeeded()
        other.system.follow_seal_state()
        assert not other.barrier.sealed
        assert other.system.status()["unseal_mode"] == "pkcs11"
        token = node.system.generate_root(back.shares[:2])
        assert token
        with pytest.raises(InvalidInput):
            node.system.generate_root(shamir.shares)
    finally:
        other.close()
        node.close()
