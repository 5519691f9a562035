"""Real client addresses behind a load balancer (``KEYSAFE_TRUSTED_PROXIES``).

A real ``keysafe server`` process sits behind ``xffproxy`` (a tiny TLS-terminating TCP
proxy on 127.0.0.1 that adds ``X-Forwarded-For: 10.9.8.7``). With the proxy trusted, the
audit trail, a key's CIDR allowlist and the failed-credential throttle see 10.9.8.7, and
one client's bad tokens do not lock out the balancer's other clients; with the proxy not
trusted, the header is ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from server_proc import ServerProc, database_url, init_vault, running, ssl_context
from xffproxy import forwarding

CLIENT = "10.9.8.7"
POLICY = '[[rule]]\npath = "px/*"\ncapabilities = ["read"]\n'
LIMIT = 5


def _allowlisted_key(server: ServerProc) -> str:
    with server.root() as root:
        assert root.put("/api/v1/policies/px", json={"text": POLICY}).status_code == 200
        root.post("/api/v1/services", json={"name": "px", "policies": ["px"]})
        made = root.post("/api/v1/keys", json={"service": "px", "cidrs": ["10.9.8.0/24"]})
        assert made.status_code == 200, made.text
        assert root.put("/api/v1/secrets/px/DB", json={"value": "v"}).status_code == 200
    key: str = made.json()["key"]
    return key


def _events(server: ServerProc) -> list[dict[str, Any]]:
    with server.root() as root:
        resp = root.get("/api/v1/audit/events", params={"limit": 1000})
        assert resp.status_code == 200, resp.text
    events: list[dict[str, Any]] = resp.json()["events"]
    return [e.get("event", e) for e in events]


@pytest.mark.timeout(120)
def test_a_trusted_proxy_forwards_the_client_address(tmp_path: Path) -> None:
    with database_url("sqlite", tmp_path) as url:
        vault = init_vault("sqlite", tmp_path, url)
    tls = ssl_context(vault.tls.ca_cert)
    env = {"KEYSAFE_TRUSTED_PROXIES": "127.0.0.1", "KEYSAFE_AUTH_FAILURES_PER_MINUTE": str(LIMIT)}
    with running(vault, extra_env=env) as server, forwarding(server.port, tls, CLIENT) as lb:
        key = _allowlisted_key(server)
        # The allowlist sees the client behind the proxy, not the proxy.
        with lb.client(key) as via_lb:
            assert via_lb.get("/api/v1/secrets/px/DB").status_code == 200
        with server.client(key) as direct:
            assert direct.get("/api/v1/secrets/px/DB").status_code == 403
        # One client's guesses block that client only, not everyone behind the balancer.
        answers = []
        for i in range(LIMIT + 2):
            with lb.client(f"ks_live_guess{i:033d}") as guesser:
                answers.append(guesser.get("/api/v1/secrets/px/DB").status_code)
        assert answers == [401] * LIMIT + [429, 429]
        with lb.client(vault.root_token) as blocked:
            assert blocked.get("/api/v1/secrets/px/DB").status_code == 429
        with server.root() as other:
            assert other.get("/api/v1/secrets/px/DB").status_code == 200
        events = _events(server)
    # The audit trail names the client.
    reads = [e for e in events if e["operation"] == "secret:read" and e["path"] == "px/DB"]
    assert [e["source"] for e in reads if e["outcome"] == "ok"][:1] == [CLIENT]
    guesses = [e for e in events if e["operation"] == "auth:token"]
    assert len(guesses) == LIMIT
    assert {e["source"] for e in guesses} == {CLIENT}
    throttled = [e for e in events if e["operation"] == "auth:throttle"]
    assert [e["source"] for e in throttled] == [CLIENT]


@pytest.mark.timeout(120)
def test_the_header_is_ignored_from_a_peer_that_is_not_trusted(tmp_path: Path) -> None:
    with database_url("sqlite", tmp_path) as url:
        vault = init_vault("sqlite", tmp_path, url)
    tls = ssl_context(vault.tls.ca_cert)
    env = {"KEYSAFE_TRUSTED_PROXIES": "192.0.2.1/32"}  # some other balancer
    with running(vault, extra_env=env) as server, forwarding(server.port, tls, CLIENT) as lb:
        key = _allowlisted_key(server)
        with lb.client(key) as via_lb:
            assert via_lb.get("/api/v1/secrets/px/DB").status_code == 403
        with server.client(key) as forged:
            forged_xff = {"X-Forwarded-For": CLIENT}
            assert forged.get("/api/v1/secrets/px/DB", headers=forged_xff).status_code == 403
        events = _events(server)
    assert CLIENT not in {e["source"] for e in events}
    outside = [e for e in events if e["operation"] == "auth:key"]  # outside the allowlist
    assert len(outside) == 2
    assert {e["source"] for e in outside} == {"127.0.0.1"}
