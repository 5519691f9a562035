"""The alerts API, the automatic actions, and exactly-once scoring across processes
(on SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from alertkit import make_vault, raise_alert
from anomaly_workload import DAY, HOUR, START, generate, misuse, profiles
from sqlalchemy import Engine
from vaultkit import Vault

from keysafe.errors import InvalidInput
from keysafe.server.app import create_app, with_fast_paths
from keysafe.server.services import build_services
from keysafe.store.engine import write_txn

HOOK_SECRET = "api-hook-signing-secret-0123456789"


@pytest.fixture
def vaults(engine: Engine, tmp_path: Path) -> Iterator[Callable[..., Vault]]:
    made: list[Vault] = []

    def make(**overrides: Any) -> Vault:
        made.append(make_vault(engine, tmp_path, **overrides))
        return made[-1]

    yield make
    for vault in made:
        vault.svc.alerts.close()
        vault.svc.audit.stop()


@pytest.fixture
async def api(
    vaults: Callable[..., Vault],
) -> AsyncIterator[tuple[httpx.AsyncClient, Vault]]:
    vault = vaults(
        alert_actions={"new_network": "suspend", "off_hours": "require-mfa"},
        smtp_host="127.0.0.1",  # e-mail hooks need one; nothing is sent in these tests
    )
    app = with_fast_paths(create_app(vault.svc.settings, services=vault.svc))
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
    headers = {"Authorization": f"Bearer {vault.root_token}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as c:
        yield c, vault


pytestmark = pytest.mark.anyio


async def test_an_email_hook_needs_an_smtp_server(vaults: Callable[..., Vault]) -> None:
    vault = vaults()
    app = with_fast_paths(create_app(vault.svc.settings, services=vault.svc))
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
    headers = {"Authorization": f"Bearer {vault.root_token}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as c:
        refused = await c.post("/api/v1/alerts/hooks", json={"email": "sec@example.org"})
        assert refused.status_code == 400, refused.text
        assert "SMTP" in refused.json()["detail"]
        assert (await c.get("/api/v1/alerts/hooks")).json()["hooks"] == []


async def test_hooks_crud(api: tuple[httpx.AsyncClient, Vault]) -> None:
    client, vault = api
    made = await client.post(
        "/api/v1/alerts/hooks", json={"url": "https://ops.example/hook", "secret": HOOK_SECRET}
    )
    assert made.status_code == 201, made.text
    assert HOOK_SECRET not in made.text
    assert made.json()["signed"] is True
    email = await client.post("/api/v1/alerts/hooks", json={"email": "sec@example.org"})
    assert email.status_code == 201
    listed = (await client.get("/api/v1/alerts/hooks")).json()["hooks"]
    assert {h["kind"] for h in listed} == {"webhook", "email"}
    assert HOOK_SECRET not in str(listed)
    for bad in (
        {"url": "https://ops.example/hook"},  # no secret
        {"url": "http://ops.example/hook", "secret": HOOK_SECRET},  # plain HTTP
        {"url": "https://ops.example/hook", "secret": HOOK_SECRET, "email": "a@b.org"},
        {"email": "a@b.org\r\nBcc: x@y.org"},  # header injection
        {},
    ):
        refused = await client.post("/api/v1/alerts/hooks", json=bad)
        assert refused.status_code == 400, (bad, refused.text)
    gone = await client.delete(f"/api/v1/alerts/hooks/{made.json()['id']}")
    assert gone.status_code == 204
    again = await client.delete(f"/api/v1/alerts/hooks/{made.json()['id']}")
    assert again.status_code == 404
    trail = vault.svc.audit.events(limit=1000)
    ops = [c.event.operation for c in trail]
    assert ops.count("alert:hook-add") == 2
    assert ops.count("alert:hook-remove") == 1
    assert all(HOOK_SECRET not in c.event.detail + c.event.path for c in trail)


async def test_list_show_and_acknowledge(api: tuple[httpx.AsyncClient, Vault]) -> None:
    client, vault = api
    alert_id = raise_alert(vault, actor="user:alice")
    listed = await client.get("/api/v1/alerts", params={"since": "24h"})
    assert [a["id"] for a in listed.json()["alerts"]] == [alert_id]
    assert (await client.get("/api/v1/alerts", params={"since": "2999-01-01"})).json() == {
        "alerts": []
    }
    for bad in ({"since": "soon"}, {"status": "closed"}, {"limit": "0"}):
        assert (await client.get("/api/v1/alerts", params=bad)).status_code in (400, 422)
    shown = await client.get(f"/api/v1/alerts/{alert_id}")
    assert shown.json()["evidence"]["network"] == "203.0.113.0/24"
    # A person is never suspended automatically: recorded, not applied.
    assert shown.json()["action_result"].startswith("not applied")
    acked = await client.post(f"/api/v1/alerts/{alert_id}/ack")
    assert acked.status_code == 200
    assert acked.json()["status"] == "acknowledged"
    assert (await client.post(f"/api/v1/alerts/{alert_id}/ack")).status_code == 409
    assert (await client.post("/api/v1/alerts/alr_nope/ack")).status_code == 404
    assert (await client.get("/api/v1/alerts/alr_nope")).status_code == 404
    # Acknowledged: the same finding again opens a new alert.
    assert raise_alert(vault, actor="user:alice") != alert_id
    assert (await client.get("/api/v1/alerts/dead-letters")).json() == {"dead_letters": []}


async def test_suspend_suspends_the_key_until_an_admin_resumes_it(
    api: tuple[httpx.AsyncClient, Vault],
) -> None:
    client, vault = api
    policy = '[[rule]]\npath = "app/*"\ncapabilities = ["read"]\n'
    await client.put("/api/v1/policies/app-read", json={"text": policy})
    await client.post("/api/v1/services", json={"name": "app", "policies": ["app-read"]})
    key = (await client.post("/api/v1/keys", json={"service": "app"})).json()
    await client.put("/api/v1/secrets/app/DB", json={"value": "v"})
    as_key = {"Authorization": f"Bearer {key['key']}"}
    assert (await client.get("/api/v1/secrets/app/DB", headers=as_key)).status_code == 200

    alert_id = raise_alert(vault, actor=key["id"])  # new_network -> suspend
    alert = (await client.get(f"/api/v1/alerts/{alert_id}")).json()
    assert alert["action"] == "suspend"
    assert alert["action_result"] == (
        f"suspended: key suspended until an admin runs `keysafe key resume {key['id']}`"
    )
    shown = (await client.get(f"/api/v1/keys/{key['id']}")).json()
    assert (shown["suspended"], shown["revoked"]) == (True, False)
    assert shown["suspended_reason"] == f"alert {alert_id}: new_network"
    assert (await client.get("/api/v1/secrets/app/DB", headers=as_key)).status_code == 401
    ops = [c.event for c in vault.svc.audit.events(limit=1000)]
    assert not [e for e in ops if e.operation == "key:revoke"]
    suspend = [e for e in ops if e.operation == "key:suspend"]
    assert [(e.actor, alert_id in e.detail) for e in suspend] == [("system", True)]

    # Another finding on the suspended key: a new alert, nothing more to do.
    again = vault.svc.alerts.get(raise_alert(vault, actor=key["id"], network="198.51.100.0/24"))
    assert again["action_result"] == f"not applied: key {key['id']} is already suspended"

    # A false alarm costs one command: the key works again, unchanged.
    resumed = await client.post(f"/api/v1/keys/{key['id']}:resume")
    assert resumed.status_code == 200, resumed.text
    assert (await client.get("/api/v1/secrets/app/DB", headers=as_key)).status_code == 200
    trail = [(c.event.detail, c.event.path) for c in vault.svc.audit.events(limit=1000)]
    assert key["key"] not in str(trail)


async def test_suspend_revokes_a_scoped_token_and_says_so(
    api: tuple[httpx.AsyncClient, Vault],
) -> None:
    client, vault = api
    policy = '[[rule]]\npath = "app/*"\ncapabilities = ["read"]\n'
    await client.put("/api/v1/policies/app-read", json={"text": policy})
    made = await client.post("/api/v1/tokens", json={"policies": ["app-read"], "ttl": "10m"})
    assert made.status_code == 200, made.text
    token = made.json()
    await client.put("/api/v1/secrets/app/DB", json={"value": "v"})
    as_token = {"Authorization": f"Bearer {token['token']}"}
    assert (await client.get("/api/v1/secrets/app/DB", headers=as_token)).status_code == 200

    alert = vault.svc.alerts.get(raise_alert(vault, actor=token["id"]))
    assert alert["action_result"] == "token revoked (tokens cannot be suspended)"
    assert (await client.get("/api/v1/secrets/app/DB", headers=as_token)).status_code == 401
    revoke = [
        c.event for c in vault.svc.audit.events(limit=1000) if c.event.operation == "token:revoke"
    ]
    assert [(e.actor, alert["id"] in e.detail) for e in revoke] == [("system", True)]


async def test_the_root_token_is_never_suspended(api: tuple[httpx.AsyncClient, Vault]) -> None:
    client, vault = api
    root_id = vault.root.principal.token_id
    alert_id = raise_alert(vault, actor=root_id)
    alert = (await client.get(f"/api/v1/alerts/{alert_id}")).json()
    assert alert["action_result"].startswith("not applied: the root token")
    assert (await client.get("/api/v1/alerts")).status_code == 200  # still works


async def test_require_mfa_takes_the_second_factor_from_a_persons_sessions(
    vaults: Callable[..., Vault],
) -> None:
    vault = vaults(alert_actions={"new_network": "require-mfa"})
    app = with_fast_paths(create_app(vault.svc.settings, services=vault.svc))
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
    root = {"Authorization": f"Bearer {vault.root_token}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        text = '[[rule]]\npath = "prod/*"\ncapabilities = ["read"]\nmfa_within_minutes = 5\n'
        await client.put("/api/v1/policies/prod-mfa", json={"text": text}, headers=root)
        await client.put("/api/v1/roles/ops", json={"policies": ["prod-mfa"]}, headers=root)
        await client.put("/api/v1/secrets/prod/DB", json={"value": "v"}, headers=root)
        made = await client.post(
            "/api/v1/users",
            json={"name": "bob", "password": "correct horse battery", "roles": ["ops"]},
            headers=root,
        )
        assert made.status_code == 200, made.text
        login = await client.post(
            "/api/v1/auth/login", json={"name": "bob", "password": "correct horse battery"}
        )
        token = login.json()["token"]
        session_id = login.json()["session"]["id"]
        as_bob = {"Authorization": f"Bearer {token}"}
        # As right after a step-up with TOTP: the second factor is fresh.
        with write_txn(vault.svc.engine) as conn:
            vault.svc.users.sessions.set_mfa(conn, session_id, vault.svc.clock.now_us())
        assert (await client.get("/api/v1/secrets/prod/DB", headers=as_bob)).status_code == 200

        alert = vault.svc.alerts.get(raise_alert(vault, actor="user:bob"))
        assert alert["action"] == "require-mfa"
        assert alert["action_result"] == "step-up required on 1 live session(s)"
        # Every process drops its cached session within a second; this one too.
        for _ in range(30):
            refused = await client.get("/api/v1/secrets/prod/DB", headers=as_bob)
            if refused.status_code == 403:
                break
            await anyio.sleep(0.1)
        assert refused.status_code == 403
        assert refused.json()["code"] == "mfa_required"
        # A machine has no second factor: only notified.
        other = vault.svc.alerts.get(raise_alert(vault, actor="key_0123"))
        assert other["action_result"].startswith("not applied")


@pytest.mark.parametrize("actions", [{"new_network": "explode"}, {"no_such_kind": "notify"}])
def test_an_invalid_action_table_is_refused_at_start(
    engine: Engine, tmp_path: Path, actions: dict[str, str]
) -> None:
    from keysafe.config import load_settings

    with pytest.raises(InvalidInput):
        build_services(load_settings(home=tmp_path, alert_actions=actions), engine=engine)


def test_two_processes_score_each_event_exactly_once(
    engine: Engine, tmp_path: Path, vaults: Callable[..., Vault]
) -> None:
    """Two server processes (two sets of services on one database) run the job at the
    same time over the same trail: one alert per misuse, every event scored once."""
    first = vaults()
    second = build_services(first.svc.settings, engine=engine, unseal_key=first.unseal_key)
    assert second.system.auto_unseal()
    second.audit.start()
    try:
        workload = [e for e in generate(days=9) if e.actor == "key_0000"]
        with write_txn(engine) as conn:
            first.svc.anomaly.score(conn, [e for e in workload if e.ts < START + 7 * DAY])
        bad = misuse(profiles()[0], "new_network", START + 8 * DAY + 11 * HOUR)
        later = [e for e in workload if e.ts >= START + 7 * DAY]
        events = sorted(later + bad, key=lambda e: e.ts)
        assert len(events) > 1000
        for i in range(0, len(events), 500):
            with write_txn(engine) as conn:
                first.svc.audit.append_in_txn(conn, events[i : i + 500])
        scored: list[int] = []

        def run(svc: Any) -> None:
            total = 0
            for _ in range(20):
                total += svc.anomaly.run(budget_seconds=2.0, batch=200)
            scored.append(total)

        threads = [threading.Thread(target=run, args=(s,)) for s in (first.svc, second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        alerts = first.svc.alerts.list_alerts()
        assert [(a["kind"], a["actor"]) for a in alerts] == [("new_network", "key_0000")]
        head = first.svc.audit.events(after=0, limit=100_000)[-1].seq
        assert first.svc.anomaly.cursor() == head
        # Each event scored by exactly one of the two (the job's own alert:raise events
        # included), so the two totals add up to the trail's length.
        assert sum(scored) == head
    finally:
        second.alerts.close()
        second.audit.stop()
