"""Health a balancer can trust, in process over both engines: the named checks, HEAD,
Vault's status-code parameters on /v1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from vaultkit import Vault

from keysafe.server.app import create_app, with_fast_paths
from keysafe.server.health import CACHE_SECONDS

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client(vault: Vault) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(vault.svc.settings, services=vault.svc)
    headers = {"Authorization": f"Bearer {vault.root_token}"}
    transport = httpx.ASGITransport(app=with_fast_paths(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as c:
        yield c


async def _after_cache() -> None:
    await asyncio.sleep(CACHE_SECONDS + 0.1)


async def test_healthy_node_says_so_on_both_routes_and_head(client: httpx.AsyncClient) -> None:
    native = await client.get("/api/v1/sys/health")
    assert native.status_code == 200
    doc = native.json()
    assert doc["healthy"] is True
    assert doc["checks"] == {"database": "ok", "audit": "ok", "writers": "ok"}
    assert doc["reason"] == ""
    vault_doc = await client.get("/v1/sys/health")
    assert vault_doc.status_code == 200
    assert vault_doc.json()["initialized"] is True
    for url in ("/api/v1/sys/health", "/v1/sys/health"):
        head = await client.head(url)
        assert head.status_code == 200, url
        assert head.content == b"", url


async def test_audit_sink_down_is_503_with_the_reason(
    vault: Vault, client: httpx.AsyncClient
) -> None:
    vault.svc.audit.stop()
    try:
        await _after_cache()
        resp = await client.get("/api/v1/sys/health")
        assert resp.status_code == 503
        assert "audit" in resp.json()["reason"]
        assert resp.json()["checks"]["audit"] != "ok"
        v1 = await client.get("/v1/sys/health?sealedcode=200&activecode=200")
        assert v1.status_code == 503  # unsealed but unable to serve: not a parameter's call
        assert "audit" in v1.json()["reason"]
    finally:
        vault.svc.audit.start()
    await _after_cache()
    assert (await client.get("/api/v1/sys/health")).status_code == 200


async def test_vault_status_code_parameters(vault: Vault, client: httpx.AsyncClient) -> None:
    ok = await client.get("/v1/sys/health?activecode=202&standbyok=true&perfstandbyok=true")
    assert ok.status_code == 202
    assert (await client.get("/v1/sys/health?sealedcode=x")).status_code == 400
    assert (await client.get("/v1/sys/health?uninitcode=1000")).status_code == 400
    assert (await client.post("/api/v1/sys/seal")).json()["sealed"] is True
    assert (await client.get("/v1/sys/health")).status_code == 503
    assert (await client.get("/v1/sys/health?sealedcode=299")).status_code == 299
    native = await client.get("/api/v1/sys/health")
    assert native.status_code == 503
    assert native.json()["reason"] == "sealed"
    unsealed = await client.post("/api/v1/sys/unseal", json={"key": vault.unseal_key})
    assert unsealed.json()["sealed"] is False
    await _after_cache()
    assert (await client.get("/v1/sys/health")).status_code == 200
