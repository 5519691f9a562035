"""Incidents over the HTTP API (in process), on SQLite and PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import httpx
import psycopg
import pytest
from vaultkit import Vault

from keysafe.rotation import lease_models
from keysafe.server.app import create_app, with_fast_paths
from keysafe.store.engine import write_txn
from pgtest import PG_BASE, pg_schema_url

pytestmark = pytest.mark.anyio

POLICY = '[[rule]]\npath = "shop/*"\ncapabilities = ["read", "list"]\n'
DB_PASSWORD = "pw-7f3c9a1e5b2d4c6a8e0f"


@pytest.fixture
async def root(vault: Vault) -> AsyncIterator[httpx.AsyncClient]:
    app = with_fast_paths(create_app(vault.svc.settings, services=vault.svc))
    transport = httpx.ASGITransport(app=app, client=("10.9.8.7", 4000))
    headers = {"Authorization": f"Bearer {vault.root_token}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as c:
        yield c


async def _key(root: httpx.AsyncClient) -> dict[str, str]:
    assert (await root.put("/api/v1/policies/shop", json={"text": POLICY})).status_code == 200
    made = await root.post("/api/v1/services", json={"name": "shop-web", "policies": ["shop"]})
    assert made.status_code == 200, made.text
    key = await root.post("/api/v1/keys", json={"service": "shop-web"})
    assert key.status_code == 200, key.text
    doc: dict[str, str] = key.json()
    return doc


async def _secret(root: httpx.AsyncClient, path: str, value: str) -> None:
    done = await root.put(f"/api/v1/secrets/{path}", json={"value": value})
    assert done.status_code in (200, 201), done.text


async def test_incident_from_scan_findings_contains_and_reports_every_step(
    root: httpx.AsyncClient,
) -> None:
    key = await _key(root)
    await _secret(root, "shop/DB_PASSWORD", DB_PASSWORD)
    # The key was in use before the leak: its read is part of the timeline.
    used = await root.get(
        "/api/v1/secrets/shop/DB_PASSWORD", headers={"Authorization": f"Bearer {key['key']}"}
    )
    assert used.status_code == 200
    findings = [
        {"secret": key["key"], "rule": "keysafe-api-key", "file": "web/.env", "line": 3},
        {"secret": DB_PASSWORD, "rule": "generic-password", "file": "web/settings.py", "line": 9},
        {"secret": "not-anything-we-know-1234", "rule": "generic", "file": "x.txt", "line": 1},
    ]
    opened = await root.post("/api/v1/incidents", json={"findings": findings})
    assert opened.status_code == 201, opened.text
    incident = opened.json()
    assert {(i["kind"], i["ref"]) for i in incident["items"]} == {
        ("key", key["id"]),
        ("secret", "shop/DB_PASSWORD"),
    }
    steps = {(s["phase"], s["action"], s["target"]): s for s in incident["steps"]}
    assert steps[("contain", "revoke-key", key["id"])]["outcome"] == "done"
    # The leaked key itself was presented to the real verification and refused.
    verified = steps[("verify", "verify-key", key["id"])]
    assert verified["outcome"] == "done"
    assert "presented and refused" in verified["detail"]
    eradicate = steps[("eradicate", "rotate-secret", "shop/DB_PASSWORD")]
    # No rotation policy for it: left to a person, and the report says so.
    assert eradicate["outcome"] == "manual"
    assert "manual rotation required (no rotation policy for it)" in eradicate["detail"]
    assert steps[("open", "resolve", "generic at x.txt:1")]["outcome"] == "manual"
    assert [s["phase"] for s in incident["steps"]][-2:] == ["record", "report"]

    # The key is dead for real.
    refused = await root.get(
        "/api/v1/secrets/shop/DB_PASSWORD", headers={"Authorization": f"Bearer {key['key']}"}
    )
    assert refused.status_code == 401
    assert (await root.get(f"/api/v1/keys/{key['id']}")).json()["revoked"] is True

    # The report lists every step with its time, and never a leaked value.
    report = await root.get(f"/api/v1/incidents/{incident['id']}/report", params={"format": "md"})
    assert report.status_code == 200
    assert report.headers["content-type"].startswith("text/markdown")
    text = report.text
    for step in incident["steps"]:
        assert step["time"], step
        assert step["time"] in text, step
        assert step["action"] in text
    assert key["key"] not in text
    assert DB_PASSWORD not in text
    as_json = (await root.get(f"/api/v1/incidents/{incident['id']}/report")).json()
    assert [s["time"] for s in as_json["steps"]] == [s["time"] for s in incident["steps"]]
    assert key["key"] not in str(as_json)
    assert DB_PASSWORD not in str(as_json)
    # The timeline holds the key's use before the leak (from the audit trail).
    shown = (await root.get(f"/api/v1/incidents/{incident['id']}")).json()
    audit = [e for e in shown["timeline"] if e["kind"] == "audit"]
    assert any(e["actor"] == key["id"] and e["what"] == "secret:read" for e in audit)
    # Every step was audited.
    events = (await root.get("/api/v1/audit/events", params={"limit": 1000})).json()["events"]
    ops = {e["operation"] for e in events}
    assert {"incident:open", "incident:contain", "incident:eradicate", "incident:verify"} <= ops
    assert key["key"] not in str(events)
    assert DB_PASSWORD not in str(events)


async def test_incident_on_an_already_revoked_key_completes(root: httpx.AsyncClient) -> None:
    key = await _key(root)
    assert (await root.delete(f"/api/v1/keys/{key['id']}")).status_code in (200, 204)
    opened = await root.post("/api/v1/incidents", json={"keys": [key["id"]], "title": "old key"})
    assert opened.status_code == 201, opened.text
    steps = opened.json()["steps"]
    contain = next(s for s in steps if s["phase"] == "contain")
    assert contain["outcome"] == "already"
    assert "already revoked" in contain["detail"]
    verify = next(s for s in steps if s["phase"] == "verify")
    # Without the raw key the record is checked, and the step says so.
    assert verify["outcome"] == "done"
    assert "record checked" in verify["detail"]
    assert not [s for s in steps if s["outcome"] == "failed"]


async def test_incident_on_a_suspended_key_revokes_it(root: httpx.AsyncClient) -> None:
    """A suspension is reversible; a leak is not: the playbook revokes the key for good."""
    key = await _key(root)
    assert (await root.post(f"/api/v1/keys/{key['id']}:suspend")).status_code == 200
    opened = await root.post(
        "/api/v1/incidents",
        json={"findings": [{"secret": key["key"], "file": "web/.env", "line": 1}]},
    )
    assert opened.status_code == 201, opened.text
    steps = {(s["phase"], s["action"]): s for s in opened.json()["steps"]}
    assert steps[("contain", "revoke-key")]["outcome"] == "done"
    assert steps[("verify", "verify-key")]["outcome"] == "done"
    shown = (await root.get(f"/api/v1/keys/{key['id']}")).json()
    assert shown["revoked"] is True
    assert (await root.post(f"/api/v1/keys/{key['id']}:resume")).status_code == 409
    auth = {"Authorization": f"Bearer {key['key']}"}
    assert (await root.get("/api/v1/secrets/shop/ANY", headers=auth)).status_code == 401


async def test_dry_run_changes_nothing(root: httpx.AsyncClient, vault: Vault) -> None:
    key = await _key(root)
    await _secret(root, "shop/API_TOKEN", "tok-value-0123456789abcdef")
    before = (await root.get("/api/v1/audit/events", params={"limit": 1000})).json()["events"]
    plan = await root.post(
        "/api/v1/incidents",
        json={
            "findings": [{"secret": key["key"], "file": "a.py", "line": 1}],
            "secrets": ["shop/API_TOKEN"],
            "dry_run": True,
        },
    )
    assert plan.status_code == 200, plan.text
    doc = plan.json()
    assert doc["dry_run"] is True
    assert {s["outcome"] for s in doc["plan"]} == {"planned"}
    actions = [(s["phase"], s["action"]) for s in doc["plan"]]
    assert ("contain", "revoke-key") in actions
    assert ("eradicate", "rotate-secret") in actions
    # Nothing changed: the key still works, no incident exists, the secret is unchanged.
    auth = {"Authorization": f"Bearer {key['key']}"}
    assert (await root.get("/api/v1/secrets/shop/API_TOKEN", headers=auth)).status_code == 200
    assert (await root.get("/api/v1/incidents")).json()["incidents"] == []
    assert (await root.get("/api/v1/secrets/shop/API_TOKEN")).json()["version"] == 1
    after = (await root.get("/api/v1/audit/events", params={"limit": 1000})).json()["events"]
    new_ops = {e["operation"] for e in after[len(before) :]}
    assert "incident:plan" in new_ops
    assert not {op for op in new_ops if op.startswith(("key:", "incident:contain"))}


async def test_close_list_and_bad_input(root: httpx.AsyncClient) -> None:
    key = await _key(root)
    inc = (await root.post("/api/v1/incidents", json={"keys": [key["id"]]})).json()
    listed = (await root.get("/api/v1/incidents", params={"status": "open"})).json()["incidents"]
    assert [i["id"] for i in listed] == [inc["id"]]
    assert listed[0]["items"] == 1
    closed = await root.post(f"/api/v1/incidents/{inc['id']}/close")
    assert closed.status_code == 200
    assert closed.json()["status"] == "closed"
    assert closed.json()["steps"][-1]["phase"] == "close"
    assert (await root.post(f"/api/v1/incidents/{inc['id']}/close")).status_code == 409
    assert (await root.get("/api/v1/incidents", params={"status": "open"})).json()[
        "incidents"
    ] == []
    for body, status in (
        ({}, 400),  # nothing named
        ({"keys": ["key_doesnotexist"]}, 404),
        ({"secrets": ["shop/NOPE"]}, 404),
        ({"leases": ["lease_nope"]}, 404),
    ):
        answer = await root.post("/api/v1/incidents", json=body)
        assert answer.status_code == status, (body, answer.text)
    assert (await root.get("/api/v1/incidents/inc_nope")).status_code == 404
    bad_format = await root.get(f"/api/v1/incidents/{inc['id']}/report", params={"format": "x"})
    assert bad_format.status_code in (400, 422)


async def test_a_caller_without_admin_cannot_open_incidents(root: httpx.AsyncClient) -> None:
    key = await _key(root)
    auth = {"Authorization": f"Bearer {key['key']}"}
    refused = await root.post("/api/v1/incidents", json={"keys": [key["id"]]}, headers=auth)
    assert refused.status_code == 403
    assert (await root.get(f"/api/v1/keys/{key['id']}")).json()["revoked"] is False


async def test_a_leaked_secret_with_a_rotation_policy_is_rotated(
    root: httpx.AsyncClient,
) -> None:
    """The issue's test: from a scan finding, the key is revoked, the secret rotated
    through its rotator, and the report lists every step with its time."""
    key = await _key(root)
    await _secret(root, "shop/WEBHOOK_SECRET", "whsec-0a1b2c3d4e5f60718293")
    policy = await root.put(
        "/api/v1/rotation/policies/shop/WEBHOOK_SECRET",
        json={"rotator": "random", "options": {"length": "40"}, "every_seconds": 86_400},
    )
    assert policy.status_code == 200, policy.text
    findings = [
        {"secret": key["key"], "rule": "keysafe-api-key", "file": "ci.yml", "line": 7},
        {"secret": "whsec-0a1b2c3d4e5f60718293", "rule": "generic", "file": "ci.yml", "line": 8},
    ]
    opened = await root.post("/api/v1/incidents", json={"findings": findings})
    assert opened.status_code == 201, opened.text
    incident = opened.json()
    steps = {(s["phase"], s["action"], s["target"]): s for s in incident["steps"]}
    assert steps[("contain", "revoke-key", key["id"])]["outcome"] == "done"
    rotated = steps[("eradicate", "rotate-secret", "shop/WEBHOOK_SECRET")]
    assert rotated["outcome"] == "done", rotated
    assert "rotated by random" in rotated["detail"]
    verified = steps[("verify", "verify-secret", "shop/WEBHOOK_SECRET")]
    assert verified["outcome"] == "done", verified
    current = (await root.get("/api/v1/secrets/shop/WEBHOOK_SECRET")).json()
    assert current["version"] == 2
    assert current["value"] != "whsec-0a1b2c3d4e5f60718293"
    report = await root.get(f"/api/v1/incidents/{incident['id']}/report", params={"format": "md"})
    for step in incident["steps"]:
        assert f"| {step['time']} | {step['phase']} |" in report.text
    assert current["value"] not in report.text
    # Left to a person: only issuing the service a new key.
    todo = [ln for ln in report.text.splitlines() if ln.startswith("- [ ] ")]
    assert len(todo) == 1
    assert todo[0].startswith(f"- [ ] replace-key {key['id'].replace('_', chr(92) + '_')}")


@pytest.fixture
def pg_target() -> Iterator[tuple[str, str]]:
    """An admin URL on the real PostgreSQL (fresh schema) and a role slug; the logins
    the test makes are dropped afterwards."""
    slug = "inc" + os.urandom(4).hex()
    with pg_schema_url("ks_inc_") as url:
        try:
            yield url, slug
        finally:
            with psycopg.connect(PG_BASE, autocommit=True) as conn:
                rows = conn.execute(
                    "SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (f"ks_{slug}%",)
                )
                for (name,) in list(rows):
                    conn.execute(f'DROP OWNED BY "{name}"')
                    conn.execute(f'DROP ROLE "{name}"')


async def test_a_leaked_lease_is_revoked(
    root: httpx.AsyncClient, vault: Vault, pg_target: tuple[str, str]
) -> None:
    url, slug = pg_target
    await vault.svc.secrets.write(vault.root, "db/admin", url)
    approved = await root.post(
        "/api/v1/rotation/targets",
        json={"kind": "postgres", "host": "127.0.0.1", "database": "test"},
    )
    assert approved.status_code == 200, approved.text
    config = lease_models.RoleConfig.checked(
        f"{slug}/app", connection_secret="db/admin", grants=[], default_ttl=600, max_ttl=900
    )
    with write_txn(vault.svc.engine) as conn:
        lease_models.write_role(conn, config, "test", vault.svc.clock.now_us())
    issued = await vault.svc.leases.issue(vault.root, f"{slug}/app")
    opened = await root.post("/api/v1/incidents", json={"leases": [issued.lease_id]})
    assert opened.status_code == 201, opened.text
    steps = {(s["phase"], s["action"]): s for s in opened.json()["steps"]}
    assert steps[("contain", "revoke-lease")]["outcome"] == "done"
    assert steps[("verify", "verify-lease")]["outcome"] == "done"
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(
            f"postgresql://{issued.username}:{issued.password}@127.0.0.1:5432/test",
            connect_timeout=3,
        ).close()
    again = await root.post("/api/v1/incidents", json={"leases": [issued.lease_id]})
    assert again.status_code == 201, again.text
    contain = next(s for s in again.json()["steps"] if s["phase"] == "contain")
    assert contain["outcome"] == "already"


async def test_an_incident_admin_acts_with_their_own_rights(root: httpx.AsyncClient) -> None:
    """An operator holding ``admin`` on ``sys/incident`` only: keys are contained, but
    rotating a secret needs ``rotate`` on it, and the step says it was refused."""
    key = await _key(root)
    await _secret(root, "shop/SIGNING", "sign-0a1b2c3d4e5f60718293")
    policy = await root.put(
        "/api/v1/rotation/policies/shop/SIGNING",
        json={"rotator": "random", "options": {}, "every_seconds": 86_400},
    )
    assert policy.status_code == 200, policy.text
    text = '[[rule]]\npath = "sys/incident"\ncapabilities = ["admin", "read-audit"]\n'
    assert (await root.put("/api/v1/policies/ir", json={"text": text})).status_code == 200
    assert (
        await root.post("/api/v1/services", json={"name": "ir-bot", "policies": ["ir"]})
    ).status_code == 200
    responder = (await root.post("/api/v1/keys", json={"service": "ir-bot"})).json()
    auth = {"Authorization": f"Bearer {responder['key']}"}
    opened = await root.post(
        "/api/v1/incidents",
        json={
            "secrets": ["shop/SIGNING"],
            "findings": [{"secret": key["key"], "file": "a.py", "line": 1}],
        },
        headers=auth,
    )
    assert opened.status_code == 201, opened.text
    doc = opened.json()
    assert doc["opened_by"] == responder["id"]
    steps = {(s["phase"], s["action"]): s for s in doc["steps"]}
    assert steps[("contain", "revoke-key")]["outcome"] == "done"
    refused = steps[("eradicate", "rotate-secret")]
    assert refused["outcome"] == "failed"
    assert refused["detail"].startswith("forbidden")
    assert steps[("open", "resolve")]["detail"].startswith("leaked values were not compared")
    assert (await root.get("/api/v1/secrets/shop/SIGNING")).json()["version"] == 1
