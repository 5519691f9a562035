"""Inputs that fuzzing turned into 500s: each must be a 400 in the route's error shape
(a problem document on ``/api/v1``, Vault's ``{"errors"}`` on ``/v1``), and the server
must keep serving afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from vaultkit import Vault

from keysafe.server.app import create_app, with_fast_paths

pytestmark = pytest.mark.anyio

BIG = "99999999999999999999"
NEST = b"[" * 254 + b"]" * 254

# (method, url, raw JSON body or None)
CRASHES: list[tuple[str, str, bytes | None]] = [
    ("GET", f"/api/v1/secrets/app/KEY?version={BIG}", None),
    ("GET", f"/api/v1/secrets/app/KEY?version=1&version=-{BIG}", None),
    ("GET", f"/api/v1/secrets/app/KEY?label=current&version={BIG}", None),  # FastAPI's route
    ("GET", f"/v1/secret/data/app/KV?version={BIG}", None),
    ("POST", "/api/v1/secrets/app/KEY:rollback", b'{"version": 1e19}'),
    ("POST", "/api/v1/secrets/app/KEY:rollback", b'{"version": 10000000000000000000}'),
    ("POST", "/api/v1/secrets/app/KEY:destroy", b'{"versions": [10000000000000000000]}'),
    ("POST", "/api/v1/secrets/app/KEY:undelete", b'{"versions": [10000000000000000000]}'),
    ("GET", f"/api/v1/audit/events?after={BIG}", None),
    ("GET", f"/api/v1/alerts?since={BIG}d", None),
    ("PUT", "/api/v1/secrets/app/NEW", b'{"value": "\\ud800"}'),
    ("PUT", "/api/v1/secrets/app/NEW", b'{"value": "x", "cas": 10000000000000000000}'),
    ("PATCH", "/api/v1/secrets/app/KEY:metadata", b'{"description": "\\ud800"}'),
    ("PATCH", "/api/v1/secrets/app/KEY:metadata", b'{"tags": {"k": "\\udfff"}}'),
    ("PATCH", "/api/v1/secrets/app/KEY:metadata", b'{"tags": {"\\ud800": "v"}}'),
    ("PUT", "/v1/secret/data/app/KV2", b'{"data": {"a": "\\ud800"}}'),
    ("PUT", "/v1/secret/data/app/KV2", b'{"data": {"a": 100000000000000000000000}}'),
    ("PUT", "/v1/secret/data/app/KV2", b'{"data": {"a": -9223372036854775809}}'),
    ("PUT", "/v1/secret/data/app/KV2", b'{"data": {"a": ' + NEST + b"}}"),
    ("PUT", "/v1/secret/data/app/KV2", b'{"data": {"a": ' + b"[" * 65 + b"]" * 65 + b"}}"),
    ("PUT", "/v1/secret/data/app/KV2", b'{"data": {"a": 1e999}}'),
    ("PUT", "/v1/secret/data/app/KV2", b'{"data": {"a": NaN}}'),
    (
        "PATCH",
        "/api/v1/secrets/app/KEY:metadata",
        b'{"expires_at": "9999-12-31T23:59:59.999999-14:00"}',
    ),
    ("PATCH", "/api/v1/secrets/app/KEY:metadata", b'{"expires_at": "0001-01-01T00:00:00+14:00"}'),
    ("DELETE", f"/api/v1/secrets/app/KEY?version=1&version=-99851786094239035686912{BIG}", None),
    ("DELETE", f"/api/v1/secrets/app/KEY?version={BIG}", None),
    ("POST", "/api/v1/tokens", b'{"ttl_seconds": 4611686018427387904}'),
    (
        "PUT",
        "/api/v1/secrets/app/DEEP",
        b'{"value": "x", "extra": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    ),
]


@pytest.fixture
async def client(vault: Vault) -> AsyncIterator[httpx.AsyncClient]:
    app = with_fast_paths(create_app(vault.svc.settings, services=vault.svc))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        headers={"Authorization": f"Bearer {vault.root_token}"},
    ) as c:
        assert (await c.put("/api/v1/secrets/app/KEY", json={"value": "v1"})).status_code == 200
        assert (await c.put("/v1/secret/data/app/KV", json={"data": {"a": 1}})).status_code == 200
        yield c


async def test_fuzzed_inputs_answer_400_in_the_routes_shape(client: httpx.AsyncClient) -> None:
    for method, url, body in CRASHES:
        headers = {"content-type": "application/json"} if body is not None else {}
        resp = await client.request(method, url, content=body, headers=headers)
        where = f"{method} {url} {(body or b'')[:60]!r}"
        assert resp.status_code == 400, (where, resp.text[:300])
        if url.startswith("/v1/"):
            assert resp.headers["content-type"] == "application/json", where
            assert isinstance(resp.json()["errors"][0], str), where
        else:
            assert resp.headers["content-type"] == "application/problem+json", where
            assert resp.json()["code"] == "invalid_input", where
    # Still serving, and nothing was stored as a side effect.
    read = await client.get("/api/v1/secrets/app/KEY")
    assert read.status_code == 200
    assert read.json()["version"] == 1
    assert (await client.get("/v1/secret/data/app/KV2")).status_code == 404
    assert (await client.get("/api/v1/secrets/app/NEW")).status_code == 404


async def test_values_at_the_edges_round_trip(client: httpx.AsyncClient) -> None:
    """What fits is kept exactly: the last instant of year 9999, 64-bit integers, 64
    levels of nesting, non-ASCII text; an unsupported JSON body that is simply malformed
    is still the route's own 400."""
    meta = await client.patch(
        "/api/v1/secrets/app/KEY:metadata",
        json={"expires_at": "9999-12-31T23:59:59.999999Z", "description": "café ☃ 😀"},
    )
    assert meta.status_code == 200, meta.text
    assert meta.json()["expires_at"] == "9999-12-31T23:59:59.999999Z"
    assert (await client.get("/api/v1/secrets/app/KEY:metadata")).json()[
        "expires_at"
    ] == "9999-12-31T23:59:59.999999Z"
    data = {"max": 2**63 - 1, "min": -(2**63), "text": "😀"}
    nested: object = []
    for _ in range(60):  # 64 levels with the body, "data" and the outer list
        nested = [nested]
    data = {**data, "deep": nested}
    assert (await client.put("/v1/secret/data/app/EDGE", json={"data": data})).status_code == 200
    assert (await client.get("/v1/secret/data/app/EDGE")).json()["data"]["data"] == data
    bad = await client.put(
        "/api/v1/secrets/app/X", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_input"
