"""The rotation routes and ``?label=`` over HTTP (through the fast path), both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from vaultkit import Vault

from keysafe.server.app import create_app, with_fast_paths

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client(vault: Vault) -> AsyncIterator[httpx.AsyncClient]:
    app = with_fast_paths(create_app(vault.svc.settings, services=vault.svc))
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
    headers = {"Authorization": f"Bearer {vault.root_token}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as c:
        yield c


async def _key(client: httpx.AsyncClient, name: str, caps: str) -> str:
    text = f'[[rule]]\npath = "payments/**"\ncapabilities = {caps}\n'
    assert (await client.put(f"/api/v1/policies/{name}", json={"text": text})).status_code == 200
    await client.post("/api/v1/services", json={"name": name, "policies": [name]})
    key: str = (await client.post("/api/v1/keys", json={"service": name})).json()["key"]
    return key


async def test_set_rotate_status_and_labels(client: httpx.AsyncClient) -> None:
    path = "payments/prod/WEBHOOK_SECRET"
    await client.put(f"/api/v1/secrets/{path}", json={"value": "v1-value"})
    body = {"rotator": "random", "options": {"length": "48"}, "every_seconds": 7 * 86400}
    set_ = await client.put(f"/api/v1/rotation/policies/{path}", json=body)
    assert set_.status_code == 200, set_.text
    assert set_.json()["rotator"] == "random"
    done = await client.post(f"/api/v1/rotation/rotate/{path}")
    assert done.status_code == 200, done.text
    assert done.json()["new_version"] == 2
    previous = await client.get(f"/api/v1/secrets/{path}", params={"label": "previous"})
    assert previous.status_code == 200
    assert previous.json()["value"] == "v1-value"
    current = await client.get(f"/api/v1/secrets/{path}", params={"label": "current"})
    assert len(current.json()["value"]) == 48
    pending = await client.get(f"/api/v1/secrets/{path}?label=pending")
    assert pending.status_code == 404
    assert (await client.get(f"/api/v1/secrets/{path}?label=next")).status_code == 400
    both = await client.get(f"/api/v1/secrets/{path}?label=current&version=1")
    assert both.status_code == 400
    status = (await client.get("/api/v1/rotation/policies")).json()["policies"]
    assert [p["path"] for p in status] == [path]
    assert status[0]["last_outcome"] == "ok"
    one = (await client.get(f"/api/v1/rotation/policies/{path}")).json()
    assert one["runs"][0]["outcome"] == "ok"
    assert "value" not in str(one["runs"]).lower().replace("previous_version", "")


async def test_capabilities_over_http(client: httpx.AsyncClient) -> None:
    path = "payments/prod/TOKEN"
    await client.put(f"/api/v1/secrets/{path}", json={"value": "v1-value"})
    reader = await _key(client, "reader", '["read", "list"]')
    rotator = await _key(client, "rotator", '["rotate", "list"]')
    body = {"rotator": "random", "every_seconds": 86400}
    as_reader = {"Authorization": f"Bearer {reader}"}
    as_rotator = {"Authorization": f"Bearer {rotator}"}
    denied = await client.put(f"/api/v1/rotation/policies/{path}", json=body, headers=as_reader)
    assert denied.status_code == 403
    ok = await client.put(f"/api/v1/rotation/policies/{path}", json=body, headers=as_rotator)
    assert ok.status_code == 200, ok.text
    # A webhook/command policy runs code or sends the value out: admin on sys/rotation.
    hook = {
        "rotator": "webhook",
        "every_seconds": 86400,
        "options": {"url": "https://example.org/h", "signing-secret": "payments/prod/SIGN"},
    }
    refused = await client.put(f"/api/v1/rotation/policies/{path}", json=hook, headers=as_rotator)
    assert refused.status_code == 403
    # An admin secret the setter cannot read may not be named by its policy.
    pg = {
        "rotator": "postgres",
        "every_seconds": 86400,
        "options": {"target-secret": "infra/DB_ADMIN_URL", "role": "app"},
    }
    refused = await client.put(f"/api/v1/rotation/policies/{path}", json=pg, headers=as_rotator)
    assert refused.status_code == 403
    assert (
        await client.post(f"/api/v1/rotation/rotate/{path}", headers=as_reader)
    ).status_code == 403
    assert (
        await client.post(f"/api/v1/rotation/rotate/{path}", headers=as_rotator)
    ).status_code == 200
    # previous needs read; the rotator key cannot read values at all.
    prev = await client.get(f"/api/v1/secrets/{path}?label=previous", headers=as_rotator)
    assert prev.status_code == 403
    prev = await client.get(f"/api/v1/secrets/{path}?label=previous", headers=as_reader)
    assert prev.json()["value"] == "v1-value"
    # pending needs rotate: the reader is refused even when nothing is pending.
    pend = await client.get(f"/api/v1/secrets/{path}?label=pending", headers=as_reader)
    assert pend.status_code == 403
    assert (
        await client.delete(f"/api/v1/rotation/policies/{path}", headers=as_rotator)
    ).status_code == 204
    missing = await client.post(f"/api/v1/rotation/rotate/{path}")
    assert missing.status_code == 404


async def test_bad_policies_are_refused(client: httpx.AsyncClient) -> None:
    path = "payments/prod/X"
    cases = [
        {"rotator": "nope", "every_seconds": 86400},
        {"rotator": "random", "every_seconds": 1},
        {"rotator": "random", "every_seconds": 86400, "grace_seconds": 86400},
        {"rotator": "random", "every_seconds": 86400, "options": {"length": "x"}},
        {"rotator": "command", "every_seconds": 86400, "options": {"command": "relative"}},
        {"rotator": "webhook", "every_seconds": 86400, "options": {"url": "http://example.org"}},
    ]
    for body in cases:
        resp = await client.put(f"/api/v1/rotation/policies/{path}", json=body)
        assert resp.status_code == 400, (body, resp.text)
    assert (await client.put(f"/api/v1/rotation/policies/{path}", json={})).status_code in (
        400,
        422,
    )
