"""The HTTP layer in process (ASGI): problem documents, the fast path, the seal gate."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from vaultkit import Vault

from keysafe.server.app import create_app, with_fast_paths

pytestmark = pytest.mark.anyio


@pytest.fixture
async def clients(vault: Vault) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """(through the fast path, FastAPI only), both authenticated as root."""
    app = create_app(vault.svc.settings, services=vault.svc)
    headers = {"Authorization": f"Bearer {vault.root_token}"}
    fast = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=with_fast_paths(app)),
        base_url="http://t",
        headers=headers,
    )
    plain = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t", headers=headers
    )
    async with fast, plain:
        yield fast, plain


async def test_fast_path_answers_exactly_like_the_route(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    fast, plain = clients
    assert (await fast.put("/api/v1/secrets/app/KEY", json={"value": "v1"})).status_code == 200
    await fast.put("/api/v1/secrets/app/KEY", json={"value": "v2"})
    for url in (
        "/api/v1/secrets/app/KEY",
        "/api/v1/secrets/app/KEY?version=1",
        "/api/v1/secrets/app/KEY?version=0",
        "/api/v1/secrets/app/KEY?version=x",
        "/api/v1/secrets/app/MISSING",
        "/api/v1/secrets/app//bad",
    ):
        a, b = await fast.get(url), await plain.get(url)
        assert a.status_code == b.status_code, url
        assert a.headers["content-type"] == b.headers["content-type"], url
        doc_a, doc_b = a.json(), b.json()
        if a.status_code == 200:
            assert doc_a == doc_b
        else:
            assert (doc_a["code"], doc_a["status"]) == (doc_b["code"], doc_b["status"]), url
    assert (await fast.get("/api/v1/secrets/app/KEY?version=1")).json()["value"] == "v1"


async def test_problem_documents(clients: tuple[httpx.AsyncClient, httpx.AsyncClient]) -> None:
    fast, _ = clients
    cases = [
        (
            lambda: fast.put("/api/v1/secrets/a/b", json={"value": "x" * 70_000}),
            413,
            "value_too_large",
        ),
        (lambda: fast.put("/api/v1/secrets/a/b", content=b"x" * 2_000_000), 413, "value_too_large"),
        (lambda: fast.put("/api/v1/secrets/a/b", json={"nope": 1}), 400, "invalid_input"),
        (
            lambda: fast.put("/api/v1/secrets/a/b", json={"value": "x", "cas": 3}),
            409,
            "cas_mismatch",
        ),
        (lambda: fast.get("/api/v1/nothing-here"), 404, "not_found"),
        (
            lambda: fast.get("/api/v1/secrets/a/b", headers={"Authorization": "Bearer nope"}),
            401,
            "unauthenticated",
        ),
        (
            lambda: fast.get("/api/v1/secrets/a/b:history", headers={"Authorization": "Basic x"}),
            401,
            "unauthenticated",
        ),
        (
            lambda: fast.post("/api/v1/tokens", json={"prefix": "a/", "mode": "admin"}),
            400,
            "invalid_input",
        ),
    ]
    for request, status, code in cases:
        response = await request()
        assert response.status_code == status, (code, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        doc = response.json()
        assert doc["code"] == code
        assert doc["type"] == f"urn:keysafe:problem:{code}"
        assert doc["status"] == status
        assert doc["detail"]


async def test_scoped_token_over_http(clients: tuple[httpx.AsyncClient, httpx.AsyncClient]) -> None:
    fast, _ = clients
    await fast.put("/api/v1/secrets/team/a/KEY", json={"value": "a"})
    await fast.put("/api/v1/secrets/team/b/KEY", json={"value": "b"})
    made = (await fast.post("/api/v1/tokens", json={"prefix": "team/a/", "mode": "read"})).json()
    assert made["token"].startswith("ks_tok_")
    scoped = {"Authorization": f"Bearer {made['token']}"}
    assert (await fast.get("/api/v1/secrets/team/a/KEY", headers=scoped)).json()["value"] == "a"
    assert (await fast.get("/api/v1/secrets/team/b/KEY", headers=scoped)).status_code == 403
    assert (
        await fast.put("/api/v1/secrets/team/a/KEY", json={"value": "x"}, headers=scoped)
    ).status_code == 403
    assert (await fast.post("/api/v1/sys/seal", headers=scoped)).status_code == 403
    assert (await fast.delete(f"/api/v1/tokens/{made['id']}")).status_code == 204
    assert (await fast.get("/api/v1/secrets/team/a/KEY", headers=scoped)).status_code == 401
    listed = (await fast.get("/api/v1/tokens")).json()["tokens"]
    assert all("token" not in t and "token_hash" not in t for t in listed)


async def test_sealed_vault_answers_only_seal_routes(
    vault: Vault, clients: tuple[httpx.AsyncClient, httpx.AsyncClient]
) -> None:
    fast, _ = clients
    await fast.put("/api/v1/secrets/s/KEY", json={"value": "v"})
    assert (await fast.post("/api/v1/sys/seal")).json()["sealed"] is True
    for method, url in (
        ("GET", "/api/v1/secrets/s/KEY"),
        ("GET", "/api/v1/secrets"),
        ("POST", "/api/v1/tokens"),
    ):
        response = await fast.request(method, url)
        assert response.status_code == 503, url
        assert response.json()["code"] == "sealed"
        assert response.text != "v"
    assert (await fast.get("/api/v1/sys/health")).status_code == 503
    assert (await fast.get("/api/v1/sys/seal-status")).json()["sealed"] is True
    bad = await fast.post("/api/v1/sys/unseal", json={"key": "ksu1_AAAA.00000000"})
    assert bad.status_code == 400
    good = await fast.post("/api/v1/sys/unseal", json={"key": vault.unseal_key})
    assert good.json()["sealed"] is False
    assert (await fast.get("/api/v1/secrets/s/KEY")).json()["value"] == "v"


async def test_denials_are_audited(
    vault: Vault, clients: tuple[httpx.AsyncClient, httpx.AsyncClient]
) -> None:
    fast, _ = clients
    await fast.get("/api/v1/secrets/x/y", headers={"Authorization": "Bearer ks_tok_wrong"})
    events = (await fast.get("/api/v1/audit/events")).json()["events"]
    assert events[-1]["operation"] == "auth:token"
    assert events[-1]["outcome"] == "denied"
    assert "ks_tok_wrong" not in str(events)
    # Reading the trail is audited too: the listing above added one event.
    verified = (await fast.post("/api/v1/audit/verify")).json()
    assert (verified["ok"], verified["events"]) == (True, len(events) + 1)
    assert all(chain["ok"] for chain in verified["chains"])  # one per writer, each intact


async def test_leak_report_revokes_the_credential(
    vault: Vault, clients: tuple[httpx.AsyncClient, httpx.AsyncClient]
) -> None:
    fast, _ = clients
    made = (await fast.post("/api/v1/tokens", json={"prefix": "ci/", "mode": "read"})).json()
    leaked = made["token"]
    anonymous = httpx.AsyncClient(transport=fast._transport, base_url="http://t")
    async with anonymous:
        report = {
            "credentials": [
                {"credential": leaked, "location": "github.com/acme/app/blob/main/.env#L3"},
                {"credential": leaked, "location": "again"},
                {"credential": "ks_tok_" + "A" * 38, "location": "look-alike"},
                {"credential": "hello", "location": "noise"},
            ]
        }
        results = (await anonymous.post("/api/v1/leaks", json=report)).json()["results"]
    assert [r["status"] for r in results] == [
        "revoked",
        "already_revoked",
        "not_a_keysafe_credential",
        "not_a_keysafe_credential",
    ]
    assert results[0]["token_id"] == made["id"]
    leaked_headers = {"Authorization": f"Bearer {leaked}"}
    assert (await fast.get("/api/v1/secrets/ci/X", headers=leaked_headers)).status_code == 401
    events = (await fast.get("/api/v1/audit/events")).json()["events"]
    revoked = [e for e in events if e["operation"] == "token:revoke-leaked"]
    assert len(revoked) == 1
    assert leaked not in str(events)


async def test_generate_root_after_the_root_token_leaked(
    vault: Vault, clients: tuple[httpx.AsyncClient, httpx.AsyncClient]
) -> None:
    fast, _ = clients
    await fast.post("/api/v1/leaks", json={"credentials": [{"credential": vault.root_token}]})
    assert (await fast.get("/api/v1/tokens")).status_code == 401
    wrong = await fast.post("/api/v1/sys/generate-root", json={"key": "ksu1_AAAA.00000000"})
    assert wrong.status_code == 400
    fresh = (await fast.post("/api/v1/sys/generate-root", json={"key": vault.unseal_key})).json()
    headers = {"Authorization": f"Bearer {fresh['root_token']}"}
    assert (await fast.get("/api/v1/tokens", headers=headers)).status_code == 200


async def test_known_digests_cover_readable_values_only(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    import base64
    import hashlib
    import hmac

    fast, _ = clients
    await fast.put("/api/v1/secrets/db/PASSWORD", json={"value": "correct-horse-battery"})
    await fast.put("/api/v1/secrets/other/TOKEN", json={"value": "zzz-other-zzz"})
    made = (await fast.post("/api/v1/tokens", json={"prefix": "db/", "mode": "read"})).json()
    scoped = {"Authorization": f"Bearer {made['token']}"}
    doc = (await fast.post("/api/v1/scan/known-digests", json={}, headers=scoped)).json()
    assert doc["algorithm"] == "hmac-sha256"
    assert [s["path"] for s in doc["secrets"]] == ["db/PASSWORD"]
    assert "correct-horse" not in str(doc)
    key = base64.b64decode(doc["key"])
    expected = hmac.new(key, b"correct-horse-battery", hashlib.sha256).hexdigest()
    assert doc["secrets"][0]["digest"] == expected
    again = (await fast.post("/api/v1/scan/known-digests", json={}, headers=scoped)).json()
    assert again["key"] != doc["key"]  # a fresh key each time: digests are not reusable


async def test_api_keys_authenticate_and_leaked_keys_are_revoked(
    vault: Vault, clients: tuple[httpx.AsyncClient, httpx.AsyncClient]
) -> None:
    from sqlalchemy import insert

    from keysafe.store.engine import write_txn
    from keysafe.store.tables import policies

    fast, _ = clients
    keys = vault.svc.keys
    with write_txn(vault.svc.engine) as conn:
        conn.execute(
            insert(policies).values(name="p", text="", created_at=0, updated_at=0, updated_by="t")
        )
        keys.create_service(conn, "worker", ["p"], "", "tok_root", holder=None)
        key = keys.create(
            conn,
            service="worker",
            policy_names=None,
            cidrs=["10.0.0.0/8"],
            expires_in_seconds=3600,
            rate_limit=None,
            description="",
            creator="tok_root",
            holder=None,
        ).key
    headers = {"Authorization": f"Bearer {key}"}
    # The in-process client comes from 127.0.0.1: outside the key's allowlist.
    outside = await fast.get("/api/v1/secrets/any/KEY", headers=headers)
    assert outside.status_code == 403
    results = (await fast.post("/api/v1/leaks", json={"credentials": [{"credential": key}]})).json()
    assert results["results"][0]["status"] == "revoked"
    assert (await fast.get("/api/v1/secrets/any/KEY", headers=headers)).status_code == 401


async def test_guessing_credentials_gets_throttled(vault: Vault) -> None:
    app = with_fast_paths(create_app(vault.svc.settings, services=vault.svc))
    transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as guesser:
        statuses = []
        limit = vault.svc.settings.auth_failures_per_minute
        for i in range(limit + 2):
            guess = {"Authorization": f"Bearer ks_live_guess{i:033d}"}
            statuses.append((await guesser.get("/api/v1/secrets/a/b", headers=guess)).status_code)
        assert statuses == [401] * limit + [429, 429]  # exactly the limit answered 401
        blocked = await guesser.get(
            "/api/v1/secrets/a/b", headers={"Authorization": f"Bearer {vault.root_token}"}
        )
        assert blocked.status_code == 429
        assert blocked.json()["code"] == "rate_limited"
        assert int(blocked.headers["retry-after"]) >= 1
    events = vault.svc.audit.events(limit=1000)
    assert [e.event.operation for e in events].count("auth:throttle") == 1
