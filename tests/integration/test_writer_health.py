"""Health answers 503 while a group-commit writer thread is down, 200 once restarted;
rotations whose claim renewals are cancelled mid-write leave the writer serving."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import anyio
import httpx
import pytest
from vaultkit import Vault

from keysafe.errors import KeysafeError
from keysafe.rotation.rotators.base import RotationContext
from keysafe.rotation.rotators.registry import Registry, RotatorDeps
from keysafe.rotation.service import RotationService
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
    down = await _health_until(client, 503)
    assert down.json()["checks"]["writers"] == "down"
    # The next write restarts the thread; health is back.
    ok = await client.put(f"/api/v1/rotation/policies/{path}", json=body)
    assert ok.status_code == 200, ok.text
    assert writer.restarts == 1
    up = await _health_until(client, 200)
    assert up.json()["checks"]["writers"] == "ok"


async def _health_until(client: httpx.AsyncClient, status: int) -> httpx.Response:
    """Health once its checks' short-lived result has caught up (it is reused 0.5 s)."""
    for _ in range(40):
        answer = await client.get("/api/v1/sys/health")
        if answer.status_code == status:
            return answer
        await anyio.sleep(0.1)
    return answer


class _Slow:
    """An external rotator whose steps take a while (a slow target), so that the claim
    renewal running beside them is cancelled mid-write when they end."""

    name = "slow"

    def check_options(self, options: Mapping[str, str]) -> None:
        pass

    def generate(self, ctx: RotationContext) -> str:
        return secrets.token_hex(8)

    def apply(self, ctx: RotationContext, new: str) -> None:
        time.sleep(0.02)

    def verify(self, ctx: RotationContext, new: str) -> None:
        time.sleep(0.02)

    def retire(self, ctx: RotationContext, old: str) -> None:
        pass


async def test_claim_renewals_cancelled_mid_write_leave_the_writer_serving(
    vault: Vault,
) -> None:
    """Issue 11 item 5, made frequent: the claim is renewed every millisecond while a
    step waits on its target, so the renewal is cancelled with its write in flight."""
    svc = vault.svc
    registry = Registry(
        RotatorDeps(engine=svc.engine, clock=svc.clock, keys=svc.keys), {"slow": lambda _: _Slow()}
    )
    rot = RotationService(
        svc.engine,
        svc.barrier,
        svc.secrets,
        svc.audit,
        svc.clock,
        svc.authorizer,
        registry,
        claim_seconds=0.003,
    )
    path = "team/app/SLOW"
    try:
        await svc.secrets.write(vault.root, path, "v1")
        await rot.set_policy(
            vault.root, path, rotator="slow", options={}, every_seconds=86400, grace_seconds=0
        )
        with anyio.fail_after(60):  # a dead writer would leave these hanging
            for _ in range(15):
                with contextlib.suppress(KeysafeError):
                    await rot.rotate(vault.root, path)
                assert rot.writer_alive
        with anyio.fail_after(10):  # writes still land, promptly
            await rot.set_policy(
                vault.root, path, rotator="slow", options={}, every_seconds=3600, grace_seconds=0
            )
        assert rot._store._writes.restarts == 0
    finally:
        rot.close()
