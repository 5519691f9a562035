"""The compliance report over the HTTP API (in process), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import update
from vaultkit import Vault

from keysafe.server.app import create_app, with_fast_paths
from keysafe.store.engine import write_txn
from keysafe.store.tables import api_keys, secrets

pytestmark = pytest.mark.anyio

DAY_US = 86_400 * 1_000_000
WIDE = '[[rule]]\npath = "**"\ncapabilities = ["read"]\n'
NARROW = '[[rule]]\npath = "app/*"\ncapabilities = ["read"]\n'


@pytest.fixture
async def root(vault: Vault) -> AsyncIterator[httpx.AsyncClient]:
    app = with_fast_paths(create_app(vault.svc.settings, services=vault.svc))
    transport = httpx.ASGITransport(app=app, client=("10.9.8.7", 4000))
    headers = {"Authorization": f"Bearer {vault.root_token}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as c:
        yield c


async def _setup(root: httpx.AsyncClient, vault: Vault) -> dict[str, str]:
    for name, text in (("wide", WIDE), ("narrow", NARROW)):
        assert (await root.put(f"/api/v1/policies/{name}", json={"text": text})).status_code == 200
    for name, policy in (("svc-wide", "wide"), ("svc-narrow", "narrow")):
        made = await root.post("/api/v1/services", json={"name": name, "policies": [policy]})
        assert made.status_code == 200
    wide = (await root.post("/api/v1/keys", json={"service": "svc-wide"})).json()
    narrow = (
        await root.post("/api/v1/keys", json={"service": "svc-narrow", "cidrs": ["10.0.0.0/8"]})
    ).json()
    # The narrow key is used now; the wide one was made long ago and never used.
    auth = {"Authorization": f"Bearer {narrow['key']}"}
    await root.put("/api/v1/secrets/app/FRESH", json={"value": "v"})
    assert (await root.get("/api/v1/secrets/app/FRESH", headers=auth)).status_code == 200
    await root.put("/api/v1/secrets/app/OLD", json={"value": "v"})
    await root.put("/api/v1/secrets/app/EXPIRING", json={"value": "v"})
    now = vault.svc.clock.now_us()
    with write_txn(vault.svc.engine) as conn:
        conn.execute(
            update(api_keys).where(api_keys.c.id == wide["id"]).values(created_at=now - 60 * DAY_US)
        )
        conn.execute(
            update(secrets).where(secrets.c.path == "app/OLD").values(created_at=now - 400 * DAY_US)
        )
        conn.execute(
            update(secrets)
            .where(secrets.c.path == "app/EXPIRING")
            .values(expires_at=now + 3 * DAY_US)
        )
    return {"wide": wide["id"], "narrow": narrow["id"]}


async def test_json_report_flags_the_risks(root: httpx.AsyncClient, vault: Vault) -> None:
    ids = await _setup(root, vault)
    answer = await root.get("/api/v1/report", params={"unused_days": 30})
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    keys = {k["id"]: k for k in doc["keys"]}
    assert set(keys[ids["wide"]]["risks"]) == {"no_address_limit", "wildcard_policy", "unused"}
    assert keys[ids["narrow"]]["risks"] == []
    assert doc["wildcard_policies"] == ["wide"]
    by_path = {s["path"]: s for s in doc["secrets"]}
    assert by_path["app/OLD"]["age_days"] >= 399
    assert by_path["app/EXPIRING"]["expiring"] is True
    assert by_path["app/FRESH"]["expiring"] is False
    summary = doc["summary"]
    assert summary["keys_with_wildcard_policy"] == 1
    assert summary["keys_unused"] == 1
    assert summary["secrets_expiring"] == 1
    assert summary["keys_expiring"] == 0  # 90 days by default, the window is 30
    # The root token has no expiry: that is a finding too.
    assert summary["tokens_without_expiry"] >= 1
    assert '"value"' not in answer.text
    events = (await root.get("/api/v1/audit/events", params={"limit": 1000})).json()["events"]
    assert any(e["operation"] == "report:read" for e in events)


async def test_markdown_and_html(root: httpx.AsyncClient, vault: Vault) -> None:
    await _setup(root, vault)
    text = await root.get("/api/v1/report", params={"format": "md"})
    assert text.status_code == 200
    assert text.headers["content-type"].startswith("text/markdown")
    assert "## API keys" in text.text
    page = await root.get("/api/v1/report", params={"format": "html"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert page.text.count("<svg") == 2
    assert "app/OLD" in page.text


async def test_bad_parameters_and_callers(root: httpx.AsyncClient, vault: Vault) -> None:
    await _setup(root, vault)
    for params in ({"format": "pdf"}, {"unused_days": 0}, {"expiring_days": 99999}):
        assert (await root.get("/api/v1/report", params=params)).status_code in (400, 422)
    made = (await root.post("/api/v1/keys", json={"service": "svc-narrow"})).json()
    refused = await root.get("/api/v1/report", headers={"Authorization": f"Bearer {made['key']}"})
    assert refused.status_code == 403
