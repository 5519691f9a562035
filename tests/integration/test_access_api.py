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


async def test_client_credentials_exchange(root: httpx.AsyncClient) -> None:
    import jwt as pyjwt

    key = await _setup(root)
    form = {"grant_type": "client_credentials", "client_id": key["id"], "client_secret": key["key"]}
    issued = await root.post("/api/v1/oauth/token", data=form, headers={"Authorization": ""})
    assert issued.status_code == 200, issued.text
    doc = issued.json()
    assert doc["token_type"] == "Bearer"
    assert 0 < doc["expires_in"] <= 3600
    access = doc["access_token"]
    bearer = {"Authorization": f"Bearer {access}"}
    assert (await root.get("/api/v1/secrets/payments/prod/STRIPE_KEY", headers=bearer)).json()[
        "value"
    ] == "sk"
    assert (
        await root.get("/api/v1/secrets/payments/prod/ROOT_PW", headers=bearer)
    ).status_code == 403

    # Offline verification against the published keys, as another service would.
    jwks = (await root.get("/.well-known/jwks.json")).json()
    kid = pyjwt.get_unverified_header(access)["kid"]
    public = pyjwt.PyJWK(dict(next(j for j in jwks["keys"] if j["kid"] == kid).items()))
    claims = pyjwt.decode(
        access, public.key, algorithms=["EdDSA"], audience="keysafe", issuer="keysafe"
    )
    assert claims["sub"] == key["id"]

    # Rotation keeps issued tokens valid; introspection and revocation.
    assert (await root.post("/api/v1/sys/rotate-signing-key")).status_code == 200
    assert len((await root.get("/.well-known/jwks.json")).json()["keys"]) == 2
    active = await root.post("/api/v1/oauth/introspect", data={"token": access})
    assert active.json()["active"] is True
    assert (
        await root.post(
            "/api/v1/oauth/revoke", data={"token": access}, headers={"Authorization": ""}
        )
    ).status_code == 200
    assert (await root.post("/api/v1/oauth/introspect", data={"token": access})).json() == {
        "active": False
    }
    assert (
        await root.get("/api/v1/secrets/payments/prod/STRIPE_KEY", headers=bearer)
    ).status_code == 401


async def test_token_exchange_refusals(root: httpx.AsyncClient) -> None:
    key = await _setup(root)
    bad = [
        ({"grant_type": "password", "client_secret": key["key"]}, 400, "unsupported_grant_type"),
        ({"grant_type": "client_credentials", "client_secret": "nope"}, 401, "invalid_client"),
        (
            {"grant_type": "client_credentials", "client_secret": key["key"], "client_id": "key_x"},
            401,
            "invalid_client",
        ),
    ]
    for form, status, error in bad:
        response = await root.post("/api/v1/oauth/token", data=form, headers={"Authorization": ""})
        assert response.status_code == status
        assert response.json()["error"] == error
    # A token with alg "none" (unsigned) is refused.
    import base64
    import json

    def part(doc: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")

    unsigned = (
        part({"alg": "none", "typ": "at+jwt"})
        + "."
        + part({"sub": key["id"], "scope": "payments-read"})
        + "."
    )
    response = await root.get(
        "/api/v1/secrets/payments/prod/STRIPE_KEY", headers={"Authorization": f"Bearer {unsigned}"}
    )
    assert response.status_code == 401


async def test_unused_key_rule_is_audited(vault: Vault, root: httpx.AsyncClient) -> None:
    from keysafe.server.app import sweep_unused_keys

    key = await _setup(root)
    assert sweep_unused_keys(vault.svc) == []  # the rule is off by default
    vault.svc.settings = vault.svc.settings.model_copy(update={"key_revoke_unused_days": 1})
    vault.svc.keys._clock = type(
        "Later", (), {"now_us": lambda self: vault.svc.clock.now_us() + 2 * 86_400_000_000}
    )()
    assert sweep_unused_keys(vault.svc) == [key["id"]]
    events = (await root.get("/api/v1/audit/events?limit=1000")).json()["events"]
    assert [e["detail"] for e in events if e["operation"] == "key:revoke-unused"] == [
        f"{key['id']} unused for 1 days"
    ]


def _refusal(doc: dict[str, object]) -> dict[str, object]:
    """A 401 problem document without what names the request."""
    return {k: v for k, v in doc.items() if k not in ("instance", "request_id")}


async def test_suspend_and_resume_a_key(vault: Vault, root: httpx.AsyncClient) -> None:
    key = await _setup(root)
    gone = (await root.post("/api/v1/keys", json={"service": "billing-worker"})).json()
    assert (await root.delete(f"/api/v1/keys/{gone['id']}")).status_code == 204
    url = "/api/v1/secrets/payments/prod/STRIPE_KEY"
    auth = {"Authorization": f"Bearer {key['key']}"}
    assert (await root.get(url, headers=auth)).status_code == 200

    suspended = await root.post(f"/api/v1/keys/{key['id']}:suspend", json={"reason": "odd use"})
    assert suspended.status_code == 200, suspended.text
    doc = suspended.json()
    assert (doc["suspended"], doc["revoked"], doc["suspended_reason"]) == (True, False, "odd use")
    assert doc["suspended_at"] is not None
    assert key["key"] not in suspended.text
    refused = await root.get(url, headers=auth)
    revoked = await root.get(url, headers={"Authorization": f"Bearer {gone['key']}"})
    assert (refused.status_code, revoked.status_code) == (401, 401)
    # Nothing tells the holder that its key is suspended rather than revoked.
    assert _refusal(refused.json()) == _refusal(revoked.json())
    listed = (await root.get("/api/v1/keys", params={"service": "billing-worker"})).json()
    assert [k["suspended"] for k in listed["keys"] if k["id"] == key["id"]] == [True]

    # Neither a second suspension nor a roll: whoever holds it gets no live successor.
    assert (await root.post(f"/api/v1/keys/{key['id']}:suspend")).status_code == 409
    rolled = await root.post(f"/api/v1/keys/{key['id']}:roll", json={"grace": "1h"})
    assert rolled.status_code == 409
    assert "resume it first" in rolled.json()["detail"]
    too_long = await root.post(f"/api/v1/keys/{key['id']}:suspend", json={"reason": "x" * 201})
    assert too_long.status_code == 400

    resumed = await root.post(f"/api/v1/keys/{key['id']}:resume")
    assert resumed.status_code == 200, resumed.text
    assert (resumed.json()["suspended"], resumed.json()["suspended_at"]) == (False, None)
    assert (await root.get(url, headers=auth)).status_code == 200
    assert (await root.post(f"/api/v1/keys/{key['id']}:resume")).status_code == 409
    assert (await root.post("/api/v1/keys/key_nope:suspend")).status_code == 404
    assert (await root.post(f"/api/v1/keys/{key['id']}:pause")).status_code == 404

    # A revoked key is never suspended nor brought back by a resume.
    assert (await root.post(f"/api/v1/keys/{gone['id']}:suspend")).status_code == 409
    assert (await root.post(f"/api/v1/keys/{gone['id']}:resume")).status_code == 409
    assert (
        await root.get(url, headers={"Authorization": f"Bearer {gone['key']}"})
    ).status_code == 401

    events = (await root.get("/api/v1/audit/events?limit=1000")).json()["events"]
    trail = [
        (e["operation"], e["detail"])
        for e in events
        if e["operation"] in ("key:suspend", "key:resume") and e["outcome"] == "ok"
    ]
    assert trail == [
        ("key:suspend", f"{key['id']} suspended: odd use"),
        ("key:resume", f"{key['id']} resumed"),
    ]
    assert key["key"] not in str(events)


async def test_suspend_and_resume_need_manage_keys_on_the_keys_service(
    root: httpx.AsyncClient,
) -> None:
    key = await _setup(root)
    assert (
        await root.post("/api/v1/services", json={"name": "other-team", "policies": []})
    ).status_code == 200
    text = '[[rule]]\npath = "sys/key/other-team"\ncapabilities = ["manage-keys"]\n'
    assert (await root.put("/api/v1/policies/other-keys", json={"text": text})).status_code == 200
    admin = await root.post("/api/v1/tokens", json={"policies": ["other-keys"], "ttl": "10m"})
    assert admin.status_code == 200, admin.text
    auth = {"Authorization": f"Bearer {admin.json()['token']}"}
    for verb in ("suspend", "resume"):
        refused = await root.post(f"/api/v1/keys/{key['id']}:{verb}", headers=auth)
        assert refused.status_code == 403, (verb, refused.text)
    shown = (await root.get(f"/api/v1/keys/{key['id']}")).json()
    assert shown["suspended"] is False
    events = (await root.get("/api/v1/audit/events?limit=1000")).json()["events"]
    denied = {e["operation"] for e in events if e["outcome"] == "denied"}
    assert {"key:suspend", "key:resume"} <= denied
