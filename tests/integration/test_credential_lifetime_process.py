"""A credential is never more alive than its source across processes: a real server
with two workers over HTTPS (SQLite). Revoking a key on one worker ends the key, its
JWTs and the tokens it minted on every worker once the lookup caches (1 s) expire."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from server_proc import ServerProc, database_url, init_vault, running

SHOP = '[[rule]]\npath = "shop/*"\ncapabilities = ["read"]\n'
MINTER = '[[rule]]\npath = "sys/token"\ncapabilities = ["admin"]\n'
SECRET = "/api/v1/secrets/shop/DB_URL"


def _reads(server: ServerProc, credential: str, n: int = 12) -> set[int]:
    """Status codes of ``n`` reads on fresh connections (spread over the workers)."""
    codes = set()
    for _ in range(n):
        with server.client(credential) as c:
            codes.add(c.get(SECRET, headers={"Connection": "close"}).status_code)
    return codes


@pytest.mark.timeout(90)
def test_revoking_a_key_ends_its_jwts_and_child_tokens_on_every_worker(tmp_path: Path) -> None:
    with database_url("sqlite", tmp_path) as url:
        vault = init_vault("sqlite", tmp_path, url)
    # Many refusals in a row from one address: keep the failure throttle out of the way.
    env = {"KEYSAFE_AUTH_FAILURES_PER_MINUTE": "1000"}
    with running(vault, workers=2, extra_env=env) as server:
        with server.root() as c:
            for name, text in (("shop", SHOP), ("minter", MINTER)):
                assert c.put(f"/api/v1/policies/{name}", json={"text": text}).status_code == 200
            made = c.post("/api/v1/services", json={"name": "web", "policies": ["shop", "minter"]})
            assert made.status_code == 200, made.text
            assert c.put(SECRET, json={"value": "postgres://shop"}).status_code == 200
            key = c.post("/api/v1/keys", json={"service": "web"}).json()
        with server.client() as anon:
            form = {"grant_type": "client_credentials", "client_secret": key["key"]}
            jwt = anon.post("/api/v1/oauth/token", data=form).json()["access_token"]
        with server.client(key["key"]) as c:
            child = c.post("/api/v1/tokens", json={"policies": ["shop"], "ttl_seconds": None})
            assert child.status_code == 200, child.text
        with server.client(child.json()["token"]) as c:
            grandchild = c.post("/api/v1/tokens", json={"policies": ["shop"]})
            assert grandchild.status_code == 403  # the child does not hold the right to mint
        credentials = [key["key"], jwt, child.json()["token"]]
        for credential in credentials:  # now cached by the workers
            assert _reads(server, credential) == {200}
        with server.root() as c:
            assert c.delete(f"/api/v1/keys/{key['id']}").status_code == 204
        time.sleep(1.1)
        for credential in credentials:
            assert _reads(server, credential, 20) == {401}
        with server.root() as c:
            introspected = c.post("/api/v1/oauth/introspect", data={"token": jwt})
            assert introspected.json() == {"active": False}
