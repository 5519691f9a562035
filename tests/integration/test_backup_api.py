"""``GET /api/v1/sys/backup``: who may take a backup (abuse), that it is audited, and
that one node runs one backup at a time (in process, both databases)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from vaultkit import Vault

from keysafe.server.app import create_app, with_fast_paths
from keysafe.store.backup_format import check_file

pytestmark = pytest.mark.anyio

BACKUP_ADMIN = """
[[rule]]
path = "sys/backup"
capabilities = ["admin"]
"""

CANARY = "canary-9f3e-plaintext-value"

READ_EVERYTHING = """
[[rule]]
path = "**"
capabilities = ["read", "list"]

[[rule]]
path = "sys/seal"
capabilities = ["admin"]
"""


@pytest.fixture
def app(vault: Vault) -> FastAPI:
    return create_app(vault.svc.settings, services=vault.svc)


@pytest.fixture
async def api(vault: Vault, app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=with_fast_paths(app), client=("10.1.2.3", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        root = _bearer(vault.root_token)
        for name, text in (("backup", BACKUP_ADMIN), ("reader", READ_EVERYTHING)):
            done = await client.put(f"/api/v1/policies/{name}", json={"text": text}, headers=root)
            assert done.status_code == 200, done.text
        for name, policies in (("backup-bot", ["backup"]), ("reader-bot", ["reader"])):
            made = await client.post(
                "/api/v1/services", json={"name": name, "policies": policies}, headers=root
            )
            assert made.status_code == 200, made.text
        put = await client.put("/api/v1/secrets/app/KEY", json={"value": CANARY}, headers=root)
        assert put.status_code == 200, put.text
        yield client


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _key(api: httpx.AsyncClient, vault: Vault, service: str) -> dict[str, str]:
    made = await api.post(
        "/api/v1/keys", json={"service": service}, headers=_bearer(vault.root_token)
    )
    assert made.status_code == 200, made.text
    return dict(made.json())


async def _events(api: httpx.AsyncClient, vault: Vault) -> list[dict[str, object]]:
    got = await api.get(
        "/api/v1/audit/events", params={"limit": 1000}, headers=_bearer(vault.root_token)
    )
    assert got.status_code == 200, got.text
    return list(got.json()["events"])


async def test_only_root_or_admin_on_sys_backup_may_take_one(
    api: httpx.AsyncClient, vault: Vault
) -> None:
    # A key that reads every secret and may even seal is still refused, and the refusal
    # is audited; no byte of the store leaves.
    reader = _bearer((await _key(api, vault, "reader-bot"))["key"])
    refused = await api.get("/api/v1/sys/backup", headers=reader)
    assert refused.status_code == 403, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert b"keysafe_backup" not in refused.content
    anonymous = await api.get("/api/v1/sys/backup")
    assert anonymous.status_code == 401
    denied = [
        e
        for e in await _events(api, vault)
        if e["operation"] == "sys:backup" and e["outcome"] != "ok"
    ]
    assert denied
    assert denied[-1]["path"] == "sys/backup"

    # An explicit grant on sys/backup is enough; the file is whole and audited.
    admin = _bearer((await _key(api, vault, "backup-bot"))["key"])
    got = await api.get("/api/v1/sys/backup", headers=admin)
    assert got.status_code == 200, got.text
    assert got.headers["cache-control"] == "no-store"
    header = check_file(io.BytesIO(got.content))
    assert header.tables["secrets"] == 1
    ok = [e for e in await _events(api, vault) if e["operation"] == "sys:backup"]
    assert ok[-1]["outcome"] == "ok"
    assert "rows, schema revision" in str(ok[-1]["detail"])

    root = await api.get("/api/v1/sys/backup", headers=_bearer(vault.root_token))
    assert root.status_code == 200
    check_file(io.BytesIO(root.content))
    # Values stay encrypted: the plaintext of the secret written above is nowhere.
    assert CANARY.encode() not in root.content


async def test_one_backup_at_a_time_per_node(
    api: httpx.AsyncClient, vault: Vault, app: FastAPI
) -> None:
    first = await api.get("/api/v1/sys/backup", headers=_bearer(vault.root_token))
    assert first.status_code == 200  # and it made the node's gate, now open again
    lock = app.state.backup_gate
    assert lock.acquire(blocking=False)  # as a running backup holds it
    try:
        busy = await api.get("/api/v1/sys/backup", headers=_bearer(vault.root_token))
        assert busy.status_code == 409, busy.text
        assert busy.json()["code"] == "conflict"
    finally:
        lock.release()
    again = await api.get("/api/v1/sys/backup", headers=_bearer(vault.root_token))
    assert again.status_code == 200
