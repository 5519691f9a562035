"""Health answers 503 while a group-commit writer thread is down, 200 once restarted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from vaultkit import Vault

from keysafe.server.app import create_app, with_fast_paths

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(vault: Vault) -> AsyncIterator[httpx.AsyncClient]:
    app = with_fast_paths(create_app(vault.svc.settings, services=vault.svc))
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
    headers = {"Authorization": f"Bearer {vault.root_token}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as c:
        yield c


async def test_health_is_503_while_the_rotation_writer_is_down(
    vault: Vault, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = "team/app/TOKEN"
    assert (await client.put(f"/api/v1/secrets/{path}", json={"value": "v1"})).status_code == 200
    assert (await client.get("/api/v1/sys/health")).status_code == 200
    writer = vault.svc.rotation._store._writes
    real = writer._run_batch

    def die(batch: Any) -> None:
        monkeypatch.setattr(writer, "_run_batch", real)
        raise SystemExit  # stands for whatever could still end the thread

    monkeypatch.setattr(writer, "_run_batch", die)
    body = {"rotator": "random", "every_seconds": 86400}
    failed = await client.put(f"/api/v1/rotation/policies/{path}", json=body)
    assert failed.status_code == 503, failed.text  # answered, not hung
    assert writer._thread is not None
    writer._thread.join(10)
    down = await client.get("/api/v1/sys/health")
    assert down.status_code == 503
    assert down.json()["writers"] == "down"
    # The next write restarts the thread; health is back.
    ok = await client.put(f"/api/v1/rotation/policies/{path}", json=body)
    assert ok.status_code == 200, ok.text
    assert writer.restarts == 1
    up = await client.get("/api/v1/sys/health")
    assert up.status_code == 200
    assert "writers" not in up.json()
