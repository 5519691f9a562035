"""The node registry and ``GET /api/v1/sys/members`` in process, on both databases:
the heartbeat registers the node, silent nodes show as down and are pruned after a
day, the route needs admin on ``sys/members``, and audit events name the node."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import insert, update
from vaultkit import Vault

from keysafe.server.app import create_app, with_fast_paths
from keysafe.server.jobs import heartbeat
from keysafe.store.engine import write_txn
from keysafe.store.tables_nodes import nodes
from keysafe.system.nodes import DOWN_AFTER_US, PRUNE_AFTER_US

pytestmark = pytest.mark.anyio

MEMBERS_ADMIN = """
[[rule]]
path = "sys/members"
capabilities = ["admin"]
"""

AUDITOR = """
[[rule]]
path = "sys/audit"
capabilities = ["read-audit"]
"""


@pytest.fixture
async def api(vault: Vault) -> AsyncIterator[httpx.AsyncClient]:
    app = with_fast_paths(create_app(vault.svc.settings, services=vault.svc))
    transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _other_node(vault: Vault, node_id: str, silent_us: int) -> None:
    now = vault.svc.clock.now_us()
    with write_txn(vault.svc.engine) as conn:
        conn.execute(
            insert(nodes).values(
                id=node_id,
                address="https://10.0.0.9:8200",
                version="0.0.1",
                pid=1,
                sealed=True,
                started_at=now - silent_us - 1,
                heartbeat_at=now - silent_us,
            )
        )


async def test_members_lists_this_node_and_marks_silent_ones_down(
    api: httpx.AsyncClient, vault: Vault
) -> None:
    svc = vault.svc
    me = svc.nodes.identity
    heartbeat(svc)
    _other_node(vault, "gone-quiet", DOWN_AFTER_US + 1_000_000)
    _other_node(vault, "long-gone", PRUNE_AFTER_US + 1_000_000)
    listed = await api.get("/api/v1/sys/members", headers=_bearer(vault.root_token))
    assert listed.status_code == 200, listed.text
    found = {m["id"]: m for m in listed.json()["members"]}
    assert set(found) == {me.id, "gone-quiet", "long-gone"}
    assert found[me.id]["status"] == "up"
    assert found[me.id]["sealed"] is False
    assert found[me.id]["version"] == me.version
    assert found["gone-quiet"]["status"] == "down"
    assert found["gone-quiet"]["sealed"] is True

    # The next heartbeat refreshes this node's row and forgets the node silent for a day.
    with write_txn(svc.engine) as conn:
        conn.execute(update(nodes).where(nodes.c.id == me.id).values(heartbeat_at=0))
    heartbeat(svc)
    assert {m.id: m.status for m in svc.nodes.members()} == {me.id: "up", "gone-quiet": "down"}


async def test_members_needs_admin_on_sys_members(api: httpx.AsyncClient, vault: Vault) -> None:
    root = _bearer(vault.root_token)
    tokens = {}
    for name, text in (("members-admin", MEMBERS_ADMIN), ("auditor", AUDITOR)):
        done = await api.put(f"/api/v1/policies/{name}", json={"text": text}, headers=root)
        assert done.status_code == 200, done.text
        made = await api.post("/api/v1/tokens", json={"policies": [name]}, headers=root)
        assert made.status_code in (200, 201), made.text
        tokens[name] = made.json()["token"]
    assert (await api.get("/api/v1/sys/members")).status_code == 401
    refused = await api.get("/api/v1/sys/members", headers=_bearer(tokens["auditor"]))
    assert refused.status_code == 403, refused.text
    allowed = await api.get("/api/v1/sys/members", headers=_bearer(tokens["members-admin"]))
    assert allowed.status_code == 200, allowed.text


async def test_audit_events_name_the_node(api: httpx.AsyncClient, vault: Vault) -> None:
    root = _bearer(vault.root_token)
    wrote = await api.put("/api/v1/secrets/app/KEY", json={"value": "v"}, headers=root)
    assert wrote.status_code in (200, 201), wrote.text
    read = await api.get("/api/v1/secrets/app/KEY", headers=root)
    assert read.status_code == 200, read.text
    events = (await api.get("/api/v1/audit/events", headers=root)).json()["events"]
    mine = [e for e in events if e["path"] == "app/KEY"]
    assert {e["operation"] for e in mine} >= {"secret:write", "secret:read"}
    assert {e["node"] for e in events} == {vault.svc.nodes.identity.id}
    verified = await api.post("/api/v1/audit/verify", headers=root)
    assert verified.json()["ok"] is True, verified.text
    assert vault.svc.audit.verify_file().ok
