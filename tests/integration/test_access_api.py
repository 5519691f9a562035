"""Policies, services and API keys over the HTTP API (in process)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from vaultkit import Vault

from keysafe.server.app import create_app, with_fast_paths

pytestmark = pytest.mark.anyio

POLICY = """
[[rule]]
path = "payments/prod/*"
capabilities = ["read", "list"]

[[rule]]
path = "payments/prod/ROOT_*"
deny = true
"""


@pytest.fixture
async def root(vault: Vault) -> AsyncIterator[httpx.AsyncClient]:
    app = with_fast_paths(create_app(vault.svc.settings, services=vault.svc))
    # The in-process transport reports this client address; keys are bound to it below.
    transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 4000))
    headers = {"Authorization": f"Bearer {vault.root_token}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as c:
        yield c


async def _setup(root: httpx.AsyncClient) -> dict[str, str]:
    assert (
        await root.put("/api/v1/policies/payments-read", json={"text": POLICY})
    ).status_code == 200
    made = await root.post(
        "/api/v1/services", json={"name": "billing-worker", "policies": ["payments-read"]}
    )
    assert made.status_code == 200, made.text
    key = await root.post(
        "/api/v1/keys",
        json={
            "service": "billing-worker",
            "cidrs": ["10.0.0.0/8", "2001:db8::/32"],
            "expires_in": "90d",
            "rate_limit": "600/min",
            "description": "prod worker",
        },
    )
    assert key.status_code == 200, key.text
    for path, value in (("payments/prod/STRIPE_KEY", "sk"), ("payments/prod/ROOT_PW", "r")):
        await root.put(f"/api/v1/secrets/{path}", json={"value": value})
    doc: dict[str, str] = key.json()
    return doc


async def test_key_reads_only_what_its_policy_grants(root: httpx.AsyncClient) -> None:
    key = await _setup(root)
    assert key["key"].startswith("ks_live_")
    auth = {"Authorization": f"Bearer {key['key']}"}
    ok = await root.get("/api/v1/secrets/payments/prod/STRIPE_KEY", headers=auth)
    assert ok.status_code == 200
    assert ok.json()["value"] == "sk"
    for method, url in (
        ("GET", "/api/v1/secrets/payments/prod/ROOT_PW"),  # explicit deny wins
        ("GET", "/api/v1/secrets/payments/dev/OTHER"),  # no rule, no access
        ("PUT", "/api/v1/secrets/payments/prod/STRIPE_KEY"),  # not granted
        ("GET", "/api/v1/keys"),  # admin only
    ):
        response = await root.request(method, url, headers=auth, json={"value": "x"})
        assert response.status_code == 403, (method, url, response.text)
    listed = (await root.get("/api/v1/secrets?prefix=payments/prod/", headers=auth)).json()
    assert [s["path"] for s in listed["secrets"]] == ["payments/prod/STRIPE_KEY"]
    # Listing needs a grant on the folder itself.
    assert (await root.get("/api/v1/secrets?prefix=payments/", headers=auth)).status_code == 403
    shown = (await root.get(f"/api/v1/keys/{key['id']}")).json()
    assert shown["use_count"] >= 1
    assert shown["last_used_from"] == "10.1.2.3"
    assert "key" not in shown


async def test_policy_check_names_the_deciding_rule(root: httpx.AsyncClient) -> None:
    key = await _setup(root)
    check = await root.post(
        "/api/v1/policy-check",
        json={"key_id": key["id"], "path": "payments/prod/ROOT_PW", "capability": "read"},
    )
    doc = check.json()
    assert doc["allowed"] is False
    assert "rule 2" in doc["deciding_rule"]
    allowed = await root.post(
        "/api/v1/policy-check",
        json={"key_id": key["id"], "path": "payments/prod/STRIPE_KEY", "capability": "read"},
    )
    assert allowed.json()["allowed"] is True


async def test_bad_policy_names_the_line(root: httpx.AsyncClient) -> None:
    bad = '[[rule]]\npath = "a/*"\ncapabilities = ["read", "fly"]\n'
    response = await root.put("/api/v1/policies/bad", json={"text": bad})
    assert response.status_code == 400
    assert "line 3" in response.json()["detail"]
    broken = '[[rule]]\npath = "a/*\n'
    response = await root.put("/api/v1/policies/broken", json={"text": broken})
    assert response.status_code == 400
    assert "line 2" in response.json()["detail"]


async def test_key_cannot_exceed_its_service(root: httpx.AsyncClient) -> None:
    await _setup(root)
    await root.put("/api/v1/policies/payments-write", json={"text": POLICY})
    response = await root.post(
        "/api/v1/keys", json={"service": "billing-worker", "policies": ["payments-write"]}
    )
    assert response.status_code == 403
    assert "more than its service" in response.json()["detail"]


async def test_roll_and_revoke(root: httpx.AsyncClient) -> None:
    key = await _setup(root)
    rolled = (await root.post(f"/api/v1/keys/{key['id']}:roll", json={"grace": "1h"})).json()
    for token in (key["key"], rolled["key"]):
        auth = {"Authorization": f"Bearer {token}"}
        assert (
            await root.get("/api/v1/secrets/payments/prod/STRIPE_KEY", headers=auth)
        ).status_code == 200
    assert (await root.delete(f"/api/v1/keys/{rolled['id']}")).status_code == 204
    auth = {"Authorization": f"Bearer {rolled['key']}"}
    assert (
        await root.get("/api/v1/secrets/payments/prod/STRIPE_KEY", headers=auth)
    ).status_code == 401
    in_use = await root.delete("/api/v1/policies/payments-read")
    assert in_use.status_code == 400
