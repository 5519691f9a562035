"""Usage, rate limits and metrics over the HTTP API (in process), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine
from vaultkit import Vault

from keysafe.config import Settings
from keysafe.monitor.usage import KIND_KEY, UsageTracker
from keysafe.server.app import create_app, with_fast_paths
from keysafe.server.services import Services, build_services

pytestmark = pytest.mark.anyio

SOURCE = "192.0.2.10"
POLICY = '[[rule]]\npath = "app/prod/*"\ncapabilities = ["read", "list"]\n'


def _client(svc: Services, token: str | None = None) -> httpx.AsyncClient:
    app = with_fast_paths(create_app(svc.settings, services=svc))
    transport = httpx.ASGITransport(app=app, client=(SOURCE, 5000))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers)


@pytest.fixture
async def root(vault: Vault) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(vault.svc, vault.root_token) as client:
        yield client


async def _key(root: httpx.AsyncClient, rate: str | None = None) -> dict[str, Any]:
    assert (await root.put("/api/v1/policies/app", json={"text": POLICY})).status_code == 200
    await root.post("/api/v1/services", json={"name": "worker", "policies": ["app"]})
    made = await root.post("/api/v1/keys", json={"service": "worker", "rate_limit": rate})
    assert made.status_code == 200, made.text
    for path in ("app/prod/DB", "app/prod/API", "other/SECRET"):
        assert (await root.put(f"/api/v1/secrets/{path}", json={"value": "v"})).status_code == 200
    doc: dict[str, Any] = made.json()
    return doc


def _audit(svc: Services, operation: str) -> list[Any]:
    return [c.event for c in svc.audit.events(0, 10_000) if c.event.operation == operation]


async def test_key_usage_counts_reads_denials_sources_and_paths(
    vault: Vault, root: httpx.AsyncClient
) -> None:
    key = await _key(root)
    async with _client(vault.svc, key["key"]) as svc_client:
        for _ in range(3):  # the fast path
            assert (await svc_client.get("/api/v1/secrets/app/prod/DB")).status_code == 200
        assert (await svc_client.get("/api/v1/secrets/app/prod/API")).status_code == 200
        assert (await svc_client.get("/api/v1/secrets/other/SECRET")).status_code == 403
        assert (await svc_client.get("/api/v1/secrets?prefix=app/prod/")).status_code == 200
    shown = await root.get(f"/api/v1/keys/{key['id']}/usage", params={"days": 7})
    assert shown.status_code == 200, shown.text
    doc = shown.json()
    assert doc["totals"] == {"requests": 6, "ok": 5, "denied": 1, "limited": 0, "errors": 0}
    assert len(doc["per_day"]) == 1
    assert doc["per_day"][0]["requests"] == 6
    assert doc["sources"] == [SOURCE]
    assert doc["paths"] == ["app/prod/API", "app/prod/DB", "other/SECRET"]
    assert doc["first_used_at"] is not None
    assert doc["last_used_at"] >= doc["first_used_at"]
    # The secret's side: who read it.
    secret = await root.get("/api/v1/usage", params={"kind": "secret", "id": "app/prod/DB"})
    assert secret.status_code == 200, secret.text
    assert key["id"] in secret.json()["actors"]
    assert secret.json()["totals"]["ok"] == 4  # root's write and the key's three reads
    assert len(secret.json()["actors"]) == 2
    # Reading usage is audited.
    assert any(e.path == f"key:{key['id']}" for e in _audit(vault.svc, "usage:read"))


@pytest.mark.parametrize(
    "params",
    [{"kind": "nope", "id": "x"}, {"kind": "key"}, {"kind": "key", "id": "k", "days": "0"}],
)
async def test_bad_usage_queries_are_400(root: httpx.AsyncClient, params: dict[str, str]) -> None:
    answer = await root.get("/api/v1/usage", params=params)
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "invalid_input"


async def test_usage_of_an_unknown_key_is_404_for_root(root: httpx.AsyncClient) -> None:
    assert (await root.get("/api/v1/keys/key_nosuch/usage")).status_code == 404


async def test_counts_merge_across_processes(engine: Engine, vault: Vault) -> None:
    """Two trackers on one database (two server processes) flushing several times."""
    one = vault.svc.usage
    two = UsageTracker(engine, vault.svc.clock)
    for tracker, source in ((one, "192.0.2.1"), (two, "192.0.2.2"), (one, "192.0.2.1")):
        for status in (200, 200, 403):
            tracker.note(KIND_KEY, "key_merge", source, status, "app/prod/DB")
        tracker.flush()
    doc = one.usage(KIND_KEY, "key_merge")
    assert doc["totals"]["requests"] == 9
    assert doc["totals"]["denied"] == 3
    assert doc["sources"] == ["192.0.2.1", "192.0.2.2"]


async def test_a_key_over_its_rate_gets_429_with_headers_and_one_audit_event(
    vault: Vault, root: httpx.AsyncClient
) -> None:
    key = await _key(root, rate="3/hour")
    async with _client(vault.svc, key["key"]) as client:
        answers = [await client.get("/api/v1/secrets/app/prod/DB") for _ in range(6)]
        # The FastAPI routes share the key's count.
        listed = await client.get("/api/v1/secrets?prefix=app/prod/")
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429, 429]
    assert listed.status_code == 429
    limited = answers[3]
    assert limited.headers["content-type"].startswith("application/problem+json")
    assert limited.json()["code"] == "rate_limited"
    assert "v" not in limited.json().get("value", "")
    assert limited.headers["ratelimit-limit"] == "3"
    assert limited.headers["ratelimit-remaining"] == "0"
    reset = int(limited.headers["ratelimit-reset"])
    assert 1 <= reset <= 3600
    assert int(limited.headers["retry-after"]) == reset
    assert listed.headers["ratelimit-limit"] == "3"
    hits = _audit(vault.svc, "ratelimit:hit")
    assert len(hits) == 1, hits
    assert hits[0].actor == key["id"]
    assert hits[0].outcome == "denied"
    usage = (await root.get(f"/api/v1/keys/{key['id']}/usage")).json()
    assert usage["totals"]["limited"] == 4
    assert usage["totals"]["ok"] == 3


@pytest.fixture
def tuned(vault: Vault, engine: Engine) -> Iterator[Services]:
    """A second server (process) on the same vault with per-source limits and public
    metrics."""
    settings = Settings.model_validate(
        {
            **vault.svc.settings.model_dump(),
            "rate_limit_per_source": "5/hour",
            "metrics_public": True,
        }
    )
    svc = build_services(settings, engine=engine, unseal_key=vault.unseal_key)
    assert svc.system.auto_unseal()
    svc.audit.start()
    yield svc
    svc.close()


async def test_per_source_limit_applies_before_authentication(
    tuned: Services, vault: Vault
) -> None:
    async with _client(tuned) as anonymous:
        codes = [(await anonymous.get("/api/v1/secrets/app/x")).status_code for _ in range(7)]
    assert codes == [401] * 5 + [429] * 2
    hits = _audit(tuned, "ratelimit:hit")
    assert len(hits) == 1
    assert SOURCE in hits[0].detail


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_need_a_credential_and_count_the_fast_path(
    vault: Vault, root: httpx.AsyncClient
) -> None:
    async with _client(vault.svc) as anonymous:
        assert (await anonymous.get("/metrics")).status_code == 401
        await anonymous.get("/api/v1/secrets/app/prod/DB")
    await root.put("/api/v1/secrets/app/prod/DB", json={"value": "v"})
    assert (await root.get("/api/v1/secrets/app/prod/DB")).status_code == 200
    scraped = await root.get("/metrics")
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    got = _samples(scraped.text)
    fast = "/api/v1/secrets/{path:path}"
    ok = frozenset({("method", "GET"), ("route", fast), ("status", "200")})
    assert got[("keysafe_http_requests_total", ok)] >= 1
    assert got[("keysafe_denials_total", frozenset({("reason", "unauthenticated")}))] >= 1
    assert got[("keysafe_sealed", frozenset())] == 0
    assert ("keysafe_http_request_duration_seconds_count", frozenset({("route", fast)})) in got
    # No secret value, no credential in the exposition.
    assert vault.root_token not in scraped.text


async def test_public_metrics_answer_without_a_credential(tuned: Services) -> None:
    async with _client(tuned) as anonymous:
        scraped = await anonymous.get("/metrics")
    assert scraped.status_code == 200
    assert "keysafe_sealed" in scraped.text


async def test_rotation_and_lease_counters_for_other_capabilities(
    vault: Vault, root: httpx.AsyncClient
) -> None:
    vault.svc.metrics.rotation("ok")
    vault.svc.metrics.lease("issued")
    got = _samples((await root.get("/metrics")).text)
    assert got[("keysafe_rotations_total", frozenset({("outcome", "ok")}))] == 1
    assert got[("keysafe_lease_events_total", frozenset({("event", "issued")}))] == 1


async def test_a_get_declaring_a_body_is_answered_by_the_route_and_counted_once(
    vault: Vault, root: httpx.AsyncClient
) -> None:
    """The hot read path leaves a GET with a declared body to the router (and the body
    limit); either way the monitor counts the answer exactly once."""
    await root.put("/api/v1/secrets/app/prod/BODY", json={"value": "v"})
    plain = await root.get("/api/v1/secrets/app/prod/BODY")
    with_body = await root.request("GET", "/api/v1/secrets/app/prod/BODY", content=b"{}")
    assert with_body.status_code == plain.status_code == 200
    assert with_body.json() == plain.json()
    got = _samples((await root.get("/metrics")).text)
    fast = "/api/v1/secrets/{path:path}"
    ok = frozenset({("method", "GET"), ("route", fast), ("status", "200")})
    assert got[("keysafe_http_requests_total", ok)] == 2
