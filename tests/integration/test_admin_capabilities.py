"""Administration granted by policies (manage-keys, read-audit, admin on ``sys/``) and
policy-bound tokens, over the HTTP API (in process, both databases)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from vaultkit import Vault

from keysafe.server.app import create_app, with_fast_paths

pytestmark = pytest.mark.anyio

TEAM_KEYS = """
[[rule]]
path = "sys/key/team-a-*"
capabilities = ["manage-keys"]

[[rule]]
path = "team-a/**"
capabilities = ["read", "list"]
"""

AUDITOR = """
[[rule]]
path = "sys/audit"
capabilities = ["read-audit"]
"""

READER = """
[[rule]]
path = "team-a/**"
capabilities = ["read"]
"""


@pytest.fixture
async def api(vault: Vault) -> AsyncIterator[httpx.AsyncClient]:
    app = with_fast_paths(create_app(vault.svc.settings, services=vault.svc))
    transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        root = {"Authorization": f"Bearer {vault.root_token}"}
        for name, text in (("team-keys", TEAM_KEYS), ("auditor", AUDITOR), ("reader", READER)):
            done = await client.put(f"/api/v1/policies/{name}", json={"text": text}, headers=root)
            assert done.status_code == 200, done.text
        for name, policies in (
            ("team-a-admin", ["team-keys"]),
            ("team-a-api", ["reader"]),
            ("team-b-api", ["reader"]),
            ("audit-bot", ["auditor"]),
        ):
            made = await client.post(
                "/api/v1/services", json={"name": name, "policies": policies}, headers=root
            )
            assert made.status_code == 200, made.text
        yield client


async def _key(api: httpx.AsyncClient, vault: Vault, service: str) -> dict[str, str]:
    root = {"Authorization": f"Bearer {vault.root_token}"}
    made = await api.post("/api/v1/keys", json={"service": service}, headers=root)
    assert made.status_code == 200, made.text
    doc: dict[str, str] = made.json()
    return doc


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_manage_keys_is_scoped_to_the_services_a_policy_names(
    api: httpx.AsyncClient, vault: Vault
) -> None:
    admin = _bearer((await _key(api, vault, "team-a-admin"))["key"])
    # Its own team's services: issue, show, roll, revoke.
    made = await api.post("/api/v1/keys", json={"service": "team-a-api"}, headers=admin)
    assert made.status_code == 200, made.text
    key_id = made.json()["id"]
    assert (await api.get(f"/api/v1/keys/{key_id}", headers=admin)).status_code == 200
    listed = await api.get("/api/v1/keys", params={"service": "team-a-api"}, headers=admin)
    assert [k["id"] for k in listed.json()["keys"]] == [key_id]
    rolled = await api.post(f"/api/v1/keys/{key_id}:roll", json={"grace": "0"}, headers=admin)
    assert rolled.status_code == 200, rolled.text
    assert (
        await api.delete(f"/api/v1/keys/{rolled.json()['id']}", headers=admin)
    ).status_code == 204

    # Another team's service, every key, and unknown ids: refused alike (no probing).
    other = await _key(api, vault, "team-b-api")
    for response in (
        await api.post("/api/v1/keys", json={"service": "team-b-api"}, headers=admin),
        await api.get(f"/api/v1/keys/{other['id']}", headers=admin),
        await api.delete(f"/api/v1/keys/{other['id']}", headers=admin),
        await api.get("/api/v1/keys", headers=admin),
        await api.get("/api/v1/keys/key_doesnotexist", headers=admin),
    ):
        assert response.status_code == 403, response.text
        assert "manage-keys" in response.json()["detail"]
    # Keys are not policies: manage-keys does not let it write policies or services.
    text = '[[rule]]\npath = "**"\ncapabilities = ["admin"]\n'
    grab = await api.put("/api/v1/policies/grab", json={"text": text}, headers=admin)
    assert grab.status_code == 403
    svc = await api.post("/api/v1/services", json={"name": "team-a-x"}, headers=admin)
    assert svc.status_code == 403


async def test_read_audit_reads_the_trail_and_nothing_else(
    api: httpx.AsyncClient, vault: Vault
) -> None:
    auditor = _bearer((await _key(api, vault, "audit-bot"))["key"])
    events = await api.get("/api/v1/audit/events", headers=auditor)
    assert events.status_code == 200, events.text
    assert events.json()["events"]
    assert (await api.get("/api/v1/policies", headers=auditor)).status_code == 403
    assert (await api.post("/api/v1/sys/seal", headers=auditor)).status_code == 403
    assert (await api.get("/api/v1/keys", headers=auditor)).status_code == 403
    # Every refusal is in the trail, with the capability it lacked.
    trail = (await api.get("/api/v1/audit/events", headers=auditor)).json()["events"]
    refused = [e for e in trail if e["outcome"] == "denied" and e["operation"] == "sys:seal"]
    assert refused
    assert "admin" in refused[-1]["detail"]


async def test_policy_bound_tokens_hold_no_more_than_their_creator(
    api: httpx.AsyncClient, vault: Vault
) -> None:
    root = _bearer(vault.root_token)
    await api.put("/api/v1/secrets/team-a/DB", json={"value": "pw"}, headers=root)
    await api.put("/api/v1/secrets/team-b/DB", json={"value": "other"}, headers=root)
    made = await api.post(
        "/api/v1/tokens", json={"policies": ["reader"], "ttl_seconds": 600}, headers=root
    )
    assert made.status_code == 200, made.text
    assert made.json()["policies"] == ["reader"]
    assert made.json()["mode"] == "policy"
    token = _bearer(made.json()["token"])
    assert (await api.get("/api/v1/secrets/team-a/DB", headers=token)).json()["value"] == "pw"
    # The policy alone decides: no rule for team-b, no list capability, no write.
    assert (await api.get("/api/v1/secrets/team-b/DB", headers=token)).status_code == 403
    listing = await api.get("/api/v1/secrets", params={"prefix": "team-a/"}, headers=token)
    assert listing.status_code == 403
    wrote = await api.put("/api/v1/secrets/team-a/DB", json={"value": "x"}, headers=token)
    assert wrote.status_code == 403
    # Unknown policies are refused by name.
    bad = await api.post("/api/v1/tokens", json={"policies": ["nope"]}, headers=root)
    assert bad.status_code == 400
    assert "nope" in bad.json()["detail"]


async def test_a_non_root_admin_may_not_mint_more_than_it_holds(
    api: httpx.AsyncClient, vault: Vault
) -> None:
    root = _bearer(vault.root_token)
    text = '[[rule]]\npath = "sys/token"\ncapabilities = ["admin"]\n'
    assert (
        await api.put("/api/v1/policies/token-admin", json={"text": text}, headers=root)
    ).status_code == 200
    made = await api.post(
        "/api/v1/services",
        json={"name": "minter", "policies": ["token-admin", "reader"]},
        headers=root,
    )
    assert made.status_code == 200
    minter = _bearer((await _key(api, vault, "minter"))["key"])
    ok = await api.post("/api/v1/tokens", json={"policies": ["reader"]}, headers=minter)
    assert ok.status_code == 200, ok.text
    more = await api.post("/api/v1/tokens", json={"policies": ["auditor"]}, headers=minter)
    assert more.status_code == 403
    assert "auditor" in more.json()["detail"]
    # Tokens of the vault core's read/write modes are the root token's alone.
    mode = await api.post("/api/v1/tokens", json={"prefix": "", "mode": "write"}, headers=minter)
    assert mode.status_code == 403


async def test_a_policy_in_use_by_a_token_or_role_is_not_deleted(
    api: httpx.AsyncClient, vault: Vault
) -> None:
    root = _bearer(vault.root_token)
    text = '[[rule]]\npath = "x/*"\ncapabilities = ["read"]\n'
    for name in ("held-by-token", "held-by-role"):
        assert (
            await api.put(f"/api/v1/policies/{name}", json={"text": text}, headers=root)
        ).status_code == 200
    token = await api.post("/api/v1/tokens", json={"policies": ["held-by-token"]}, headers=root)
    assert token.status_code == 200, token.text
    role = await api.put("/api/v1/roles/r1", json={"policies": ["held-by-role"]}, headers=root)
    assert role.status_code in (200, 201), role.text
    for name, user in (("held-by-token", token.json()["id"]), ("held-by-role", "role r1")):
        refused = await api.delete(f"/api/v1/policies/{name}", headers=root)
        assert refused.status_code == 400, refused.text
        assert user in refused.json()["detail"]
    # Once the token is revoked the policy can go.
    await api.delete(f"/api/v1/tokens/{token.json()['id']}", headers=root)
    assert (await api.delete("/api/v1/policies/held-by-token", headers=root)).status_code == 204
