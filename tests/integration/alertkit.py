"""Test helpers for the alerts tests (imported by them, like vaultkit)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from vaultkit import Vault

from keysafe.config import load_settings
from keysafe.monitor.anomaly import Finding
from keysafe.server.services import build_services
from keysafe.store.engine import write_txn
from keysafe.system.service import MODE_KEY


def make_vault(engine: Engine, tmp_path: Path, **overrides: Any) -> Vault:
    """An initialised, unsealed vault whose settings take ``overrides``."""
    settings = load_settings(home=tmp_path / "home", **overrides)
    bootstrap = build_services(settings, engine=engine)
    result = bootstrap.system.initialize(1, 1, mode=MODE_KEY)
    bootstrap.close()
    svc = build_services(settings, engine=engine, unseal_key=result.shares[0])
    assert svc.system.auto_unseal()
    svc.audit.start()
    return Vault(svc, result.root_token, result.shares[0])


def raise_alert(vault: Vault, actor: str = "key_0123", network: str = "203.0.113.0/24") -> str:
    """Store one new_network finding for ``actor`` now; returns its alert id."""
    finding = Finding(
        "new_network",
        actor,
        vault.svc.clock.now_us(),
        network,
        {"source": "203.0.113.9", "network": network, "known_networks": 1},
    )
    with write_txn(vault.svc.engine) as conn:
        raised = vault.svc.alerts.record(conn, [finding])
    return raised[0].alert_id
