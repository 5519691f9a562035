"""Every route of the server refuses every kind of bad credential.

The matrix is generated from the application's route table, so a new route is covered
without anyone remembering to add it: it must either refuse all the bad credentials
below, or be listed in PUBLIC_ROUTES on purpose.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi.routing import APIRoute
from sqlalchemy import update
from vaultkit import Vault

from keysafe.server.app import api_routers, create_app, with_fast_paths
from keysafe.store.engine import write_txn
from keysafe.store.tables import tokens

pytestmark = pytest.mark.anyio

# Routes that answer without a token, each for a stated reason.
PUBLIC_ROUTES = {
    ("GET", "/api/v1/sys/health"),  # liveness probes
    ("GET", "/api/v1/sys/seal-status"),  # operators before unsealing
    ("POST", "/api/v1/sys/init"),  # once, before any token exists
    ("POST", "/api/v1/sys/unseal"),  # proof is the share itself
    ("POST", "/api/v1/sys/generate-root"),  # proof is the unseal material
    ("POST", "/api/v1/leaks"),  # proof: the leaked credential itself, or a partner signature
    ("POST", "/api/v1/oauth/token"),  # proof is the API key in the request (RFC 6749)
    ("POST", "/api/v1/oauth/revoke"),  # proof is the token itself (RFC 7009)
    ("GET", "/.well-known/jwks.json"),  # public keys, for offline verification
    ("POST", "/v1/auth/approle/login"),  # proof is the API key in the request
    ("PUT", "/v1/auth/approle/login"),  # the same, as Vault's Go client sends it
    ("GET", "/v1/sys/init"),  # Vault's initialisation probe
    ("GET", "/v1/sys/leader"),  # Vault's HA probe
    ("POST", "/api/v1/auth/login"),  # proof is the password and second factor (throttled)
    ("GET", "/v1/sys/health"),
    ("GET", "/v1/sys/seal-status"),
    # The API's documentation: the same for everyone, and readable while sealed.
    ("GET", "/api/v1/docs"),
    ("GET", "/api/v1/docs/start.js"),
    ("GET", "/api/v1/docs/assets/{name}"),
}

# "Who am I" routes: any live credential may describe itself, whatever its policies.
SELF_ROUTES = {
    ("GET", "/api/v1/tokens/self"),
    ("GET", "/v1/auth/token/lookup-self"),
    ("POST", "/v1/auth/token/lookup-self"),
    ("POST", "/v1/auth/token/renew-self"),
    ("PUT", "/v1/auth/token/renew-self"),
    ("POST", "/v1/auth/token/revoke-self"),  # a key or the root token: 400, not revoked
    ("PUT", "/v1/auth/token/revoke-self"),
    # The one KV v2 mount and its settings: the same for every credential (as in Vault).
    ("GET", "/v1/sys/internal/ui/mounts/{path:path}"),
    ("GET", "/v1/secret/config"),
    ("POST", "/api/v1/oauth/introspect"),  # resource servers introspect tokens (RFC 7662)
    # A person's own session: other credentials are answered 400 (not a session).
    ("GET", "/api/v1/auth/self"),
    ("POST", "/api/v1/auth/logout"),
    ("POST", "/api/v1/auth/mfa"),
    ("POST", "/api/v1/auth/totp"),
    ("POST", "/api/v1/auth/totp/confirm"),
}

PARAMS = {"path": "matrix/KEY", "name": "matrix-policy", "key_id": "key_0", "token_id": "tok_0"}
PARAMS.update(session_id="ses_0")
PARAMS.update(alert_id="alr_0", hook_id="hook_0")
PARAMS.update(lease_id="lease_0")
PARAMS.update(incident_id="inc_0")
PARAMS.update(target_id="rtg_0")


@dataclass(frozen=True)
class Credentials:
    expired: str
    revoked: str
    outside_address: str  # an API key whose allowlist excludes the test client
    no_capability: str  # an API key whose policy grants nothing on these routes
    mfa_required: str  # an API key granted everything, but only with a recent second factor
    everything: str  # an API key whose policy grants every capability everywhere
    root: str


def routes() -> list[tuple[str, str]]:
    """(method, path template) of every route the application mounts."""
    found = []
    for router in api_routers():
        for route in router.routes:
            if isinstance(route, APIRoute):
                for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
                    found.append((method, route.path))
    return found


# Routes that take a ``:verb`` suffix are exercised with one of their verbs.
VERBS = {
    ("PATCH", "/api/v1/secrets/{path:path}"): ":metadata",
    ("POST", "/api/v1/secrets/{path:path}"): ":undelete",
    ("POST", "/api/v1/keys/{key_id}"): ":roll",
}


# A well-formed body for each route that takes one, so that the refusal tested is the
# credential's and not the body's.
BODIES: dict[tuple[str, str], object] = {
    ("PUT", "/api/v1/secrets/{path:path}"): {"value": "x"},
    ("PATCH", "/api/v1/secrets/{path:path}"): {"owner": "me"},
    ("POST", "/api/v1/secrets/{path:path}"): {},
    ("PATCH", "/api/v1/secrets/{path:path}:metadata"): {"owner": "me"},
    ("POST", "/api/v1/secrets/{path:path}:rollback"): {"version": 1},
    ("POST", "/api/v1/secrets/{path:path}:destroy"): {"versions": [1]},
    ("POST", "/api/v1/tokens"): {"policies": ["all"]},
    ("PATCH", "/v1/secret/data/{path:path}"): {"data": {"k": "v"}},
    ("POST", "/v1/secret/delete/{path:path}"): {"versions": [1]},
    ("PUT", "/v1/secret/delete/{path:path}"): {"versions": [1]},
    ("POST", "/v1/secret/undelete/{path:path}"): {"versions": [1]},
    ("PUT", "/v1/secret/undelete/{path:path}"): {"versions": [1]},
    ("POST", "/v1/secret/destroy/{path:path}"): {"versions": [1]},
    ("PUT", "/v1/secret/destroy/{path:path}"): {"versions": [1]},
    ("POST", "/v1/secret/metadata/{path:path}"): {"max_versions": 3},
    ("PUT", "/v1/secret/metadata/{path:path}"): {"max_versions": 3},
    ("PATCH", "/v1/secret/metadata/{path:path}"): {"max_versions": 3},
    ("POST", "/v1/auth/token/create"): {"policies": ["all"]},
    ("PUT", "/v1/auth/token/create"): {"policies": ["all"]},
    ("POST", "/v1/auth/token/lookup"): {"token": "ks_tok_unknown"},
    ("PUT", "/v1/auth/token/lookup"): {"token": "ks_tok_unknown"},
    ("POST", "/v1/auth/token/lookup-accessor"): {"accessor": "tok_0"},
    ("PUT", "/v1/auth/token/lookup-accessor"): {"accessor": "tok_0"},
    ("POST", "/v1/auth/token/revoke-accessor"): {"accessor": "tok_0"},
    ("PUT", "/v1/auth/token/revoke-accessor"): {"accessor": "tok_0"},
    ("PUT", "/api/v1/policies/{name}"): {
        "text": '[[rule]]\npath = "a/*"\ncapabilities = ["read"]\n'
    },
    ("POST", "/api/v1/policy-check"): {"path": "matrix/KEY", "policies": []},
    ("POST", "/api/v1/services"): {"name": "matrix-svc"},
    ("POST", "/api/v1/keys"): {"service": "m"},
    ("POST", "/api/v1/keys/{key_id}"): {"grace": "1h"},
    ("POST", "/api/v1/sys/rewrap"): {"batch": 10},
    ("POST", "/api/v1/scan/known-digests"): {"prefix": "matrix/"},
    ("POST", "/api/v1/auth/mfa"): {"code": "123456"},
    ("POST", "/api/v1/auth/totp"): {"password": "not the password"},
    ("POST", "/api/v1/auth/totp/confirm"): {"code": "123456"},
    ("POST", "/api/v1/users"): {"name": "matrix-user", "password": "a long matrix password"},
    ("PUT", "/api/v1/users/{name}/roles"): {"roles": []},
    ("PUT", "/api/v1/roles/{name}"): {"policies": ["all"]},
    ("POST", "/api/v1/incidents"): {"keys": ["key_0"], "dry_run": True},
    ("POST", "/api/v1/alerts/hooks"): {"email": "ops@example.org"},
    ("PUT", "/api/v1/rotation/policies/{path:path}"): {
        "rotator": "random",
        "every_seconds": 86400,
    },
    ("POST", "/api/v1/rotation/targets"): {"kind": "postgres", "host": "db", "database": "x"},
    ("PUT", "/api/v1/creds/roles/{name:path}"): {"connection_secret": "matrix/DB", "grants": []},
    ("POST", "/api/v1/creds/{name:path}"): {"ttl": 60},
    ("POST", "/api/v1/leases/{lease_id}/renew"): {"increment": 60},
    ("POST", "/api/v1/leases/revoke-prefix"): {"prefix": "matrix/"},
    ("POST", "/v1/secret/data/{path:path}"): {"data": {"k": "v"}},
    ("PUT", "/v1/secret/data/{path:path}"): {"data": {"k": "v"}},
    ("POST", "/v1/transit/encrypt/{name}"): {"plaintext": "eA=="},
    ("POST", "/v1/transit/decrypt/{name}"): {"ciphertext": "vault:v1:AAAA"},
    ("POST", "/api/v1/sys/unseal-migrate"): {"to": "shamir", "shares": ["not a share"]},
}


def _url(method: str, template: str) -> str:
    url = re.sub(r"\{(\w+)(?::path)?\}", lambda m: PARAMS[m.group(1)], template)
    return url + VERBS.get((method, template), "")


PROTECTED = [r for r in routes() if r not in PUBLIC_ROUTES]


def test_the_matrix_is_not_empty() -> None:
    assert len(PROTECTED) >= 25
    assert all((m, p) in {(m2, p2) for m2, p2 in routes()} for m, p in PUBLIC_ROUTES)


@pytest.fixture
async def setup(vault: Vault) -> AsyncIterator[tuple[httpx.AsyncClient, Credentials]]:
    app = with_fast_paths(create_app(vault.svc.settings, services=vault.svc))
    transport = httpx.ASGITransport(app=app, client=("192.0.2.10", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        root = {"Authorization": f"Bearer {vault.root_token}"}
        expired = (
            await client.post("/api/v1/tokens", json={"prefix": "", "mode": "write"}, headers=root)
        ).json()
        revoked = (
            await client.post("/api/v1/tokens", json={"prefix": "", "mode": "write"}, headers=root)
        ).json()
        await client.delete(f"/api/v1/tokens/{revoked['id']}", headers=root)
        with write_txn(vault.svc.engine) as conn:
            conn.execute(update(tokens).where(tokens.c.id == expired["id"]).values(expires_at=1))
        vault.svc.tokens.forget(expired["id"])
        nothing = '[[rule]]\npath = "elsewhere/*"\ncapabilities = ["read"]\n'
        await client.put("/api/v1/policies/nothing", json={"text": nothing}, headers=root)
        await client.post(
            "/api/v1/services", json={"name": "m", "policies": ["nothing"]}, headers=root
        )
        far = await client.post(
            "/api/v1/keys", json={"service": "m", "cidrs": ["10.0.0.0/8"]}, headers=root
        )
        near = await client.post("/api/v1/keys", json={"service": "m"}, headers=root)
        caps = (
            '["read", "list", "write", "delete", "destroy", "rotate", "manage-keys",'
            ' "read-audit", "admin"]'
        )
        for name, extra in (("all", ""), ("all-mfa", "mfa_within_minutes = 5\n")):
            text = f'[[rule]]\npath = "**"\ncapabilities = {caps}\n{extra}'
            done = await client.put(f"/api/v1/policies/{name}", json={"text": text}, headers=root)
            assert done.status_code == 200, done.text
            await client.post(
                "/api/v1/services", json={"name": f"svc-{name}", "policies": [name]}, headers=root
            )
        everything = await client.post("/api/v1/keys", json={"service": "svc-all"}, headers=root)
        mfa = await client.post("/api/v1/keys", json={"service": "svc-all-mfa"}, headers=root)
        yield (
            client,
            Credentials(
                expired=expired["token"],
                revoked=revoked["token"],
                outside_address=far.json()["key"],
                no_capability=near.json()["key"],
                mfa_required=mfa.json()["key"],
                everything=everything.json()["key"],
                root=vault.root_token,
            ),
        )


BAD = [
    "none",
    "malformed",
    "wrong-scheme",
    "bad-checksum",
    "expired",
    "revoked",
    "outside-address",
    "no-capability",
    "mfa-required",
]


def _headers(kind: str, creds: Credentials) -> dict[str, str]:
    return {
        "none": {},
        "malformed": {"Authorization": "Bearer not-a-token"},
        "wrong-scheme": {"Authorization": f"Basic {creds.root}"},
        "bad-checksum": {
            "Authorization": "Bearer " + creds.root[:-1] + ("A" if creds.root[-1] != "A" else "B")
        },
        "expired": {"Authorization": f"Bearer {creds.expired}"},
        "revoked": {"Authorization": f"Bearer {creds.revoked}"},
        "outside-address": {"Authorization": f"Bearer {creds.outside_address}"},
        "no-capability": {"Authorization": f"Bearer {creds.no_capability}"},
        "mfa-required": {"Authorization": f"Bearer {creds.mfa_required}"},
    }[kind]


@pytest.mark.parametrize(("method", "template"), PROTECTED)
async def test_every_route_refuses_bad_credentials(
    setup: tuple[httpx.AsyncClient, Credentials], method: str, template: str
) -> None:
    client, creds = setup
    url = _url(method, template)
    body = BODIES.get((method, template))
    for kind in BAD:
        if kind in ("no-capability", "mfa-required") and (method, template) in SELF_ROUTES:
            continue
        response = await client.request(method, url, headers=_headers(kind, creds), json=body)
        expected = {403} if kind in ("outside-address", "no-capability", "mfa-required") else {401}
        if template.startswith("/v1/"):
            expected = {403}  # Vault answers a missing or bad token 403 too
        assert response.status_code in expected, (
            kind,
            method,
            url,
            response.status_code,
            response.text,
        )
        assert "value" not in response.text or response.json().get("code") in (
            "forbidden",
            "unauthenticated",
            "mfa_required",
        )
        if kind == "mfa-required":
            # The holder learns that a second factor would let it through.
            doc = response.json()
            assert doc.get("code") == "mfa_required" or "requires MFA" in str(doc.get("errors")), (
                method,
                url,
                response.text,
            )


# Routes that only the root token may use, whatever a policy grants, each for a reason.
ROOT_ONLY: set[tuple[str, str]] = set()


@pytest.mark.parametrize(("method", "template"), PROTECTED)
@pytest.mark.parametrize("who", ["root", "everything"])
async def test_the_allowed_caller_is_let_through(
    setup: tuple[httpx.AsyncClient, Credentials], method: str, template: str, who: str
) -> None:
    """The root token, and an API key whose policy grants every capability on ``**``
    (policies grant administration too: manage-keys, read-audit, admin on ``sys/``)."""
    client, creds = setup
    if who == "everything" and (method, template) in ROOT_ONLY:
        pytest.skip("root only")
    token = creds.root if who == "root" else creds.everything
    body = BODIES.get((method, template))
    response = await client.request(
        method, _url(method, template), headers={"Authorization": f"Bearer {token}"}, json=body
    )
    # Past authentication and authorisation: any answer but 401/403 (404, 400 for this
    # dummy body, 200...).
    assert response.status_code not in (401, 403), (method, template, response.text)
