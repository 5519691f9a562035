"""Auto-unseal through transit on another keysafe, both real processes over HTTPS.

Vault A serves ``/v1/transit``; vault B (``KEYSAFE_SEAL=transit``) keeps its root key
wrapped by A's key: B restarts unsealed, stays sealed (and says why) while A is down,
and unseals by itself once A is back. Who may call transit on A is policy-checked.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

import httpx
import pytest
from server_proc import database_url, init_vault, running, start_server

pytestmark = pytest.mark.timeout(150)

KEY = "unseal-b"
UNSEALER = f'[[rule]]\npath = "transit/keys/{KEY}"\ncapabilities = ["read", "write"]\n'
READER = f'[[rule]]\npath = "transit/keys/{KEY}"\ncapabilities = ["read"]\n'
OTHER = '[[rule]]\npath = "transit/keys/other"\ncapabilities = ["read", "write"]\n'
SECRET = "/api/v1/secrets/b/API_KEY"


def _wait_health(client: httpx.Client, status: int, timeout: float = 10.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        resp = client.get("/api/v1/sys/health")
        if resp.status_code == status or time.monotonic() > deadline:
            return resp
        time.sleep(0.2)


def _token(c: httpx.Client, name: str, text: str) -> str:
    assert c.put(f"/api/v1/policies/{name}", json={"text": text}).status_code == 200
    made = c.post("/api/v1/tokens", json={"policies": [name]})
    assert made.status_code in (200, 201), made.text
    return str(made.json()["token"])


def test_transit_unseal_restart_down_and_back(tmp_path: Path) -> None:
    with database_url("sqlite", tmp_path / "a") as url_a:
        vault_a = init_vault("sqlite", tmp_path / "a", url_a)
    with database_url("sqlite", tmp_path / "b") as url_b:
        vault_b = init_vault("sqlite", tmp_path / "b", url_b, embedded=False)
    server_a = start_server(vault_a)
    port_a = server_a.port
    try:
        with server_a.root() as c:
            assert c.post(f"/v1/transit/keys/{KEY}").status_code == 204
            unsealer = _token(c, "unsealer", UNSEALER)
            reader = _token(c, "transit-reader", READER)
            other = _token(c, "transit-other", OTHER)
        _abuse(server_a.base_url, server_a, unsealer, reader, other)

        env_b = {
            "KEYSAFE_SEAL": "transit",
            "KEYSAFE_TRANSIT_ADDRESS": server_a.base_url,
            "KEYSAFE_TRANSIT_CACERT": str(vault_a.tls.ca_cert),
            "KEYSAFE_TRANSIT_TOKEN": unsealer,
            "KEYSAFE_TRANSIT_KEY_NAME": KEY,
        }
        with running(vault_b, extra_env=env_b, expect_status=503) as server_b:
            with server_b.client() as c:
                init = c.post("/api/v1/sys/init", json={"shares": 3, "threshold": 2}).json()
            assert init["recovery"] is True
            assert len(init["shares"]) == 3
            recovery, root_b = init["shares"], init["root_token"]
            with server_b.client(root_b) as c:
                assert _wait_health(c, 200).status_code == 200
                assert c.put(SECRET, json={"value": "b-value"}).status_code == 200
                assert c.get("/api/v1/sys/seal-status").json()["unseal_mode"] == "transit"
        port_b = server_b.port

        # A restart of B: unsealed through A.
        with (
            running(vault_b, extra_env=env_b, port=port_b) as server_b,
            server_b.client(root_b) as c,
        ):
            assert c.get(SECRET).json()["value"] == "b-value"

        # A down: B starts sealed and says why; recovery shares do not unseal it.
        server_a.stop()
        server_b = start_server(vault_b, extra_env=env_b, expect_status=503, port=port_b)
        try:
            with server_b.client(root_b) as c:
                health = c.get("/api/v1/sys/health")
                assert health.status_code == 503
                assert "cannot reach it" in health.json()["reason"], health.text
                assert "auto-unseal failed, staying sealed" in server_b.log()
                first = c.post("/api/v1/sys/unseal", json={"share": recovery[0]}).json()
                second = c.post(
                    "/api/v1/sys/unseal", json={"share": recovery[1], "nonce": first["nonce"]}
                )
                assert second.status_code == 503, second.text
                assert second.json()["code"] == "unseal_source_failed"
                assert c.get("/api/v1/sys/seal-status").json()["sealed"] is True
                assert c.get(SECRET).status_code == 503
                # A back at its address: B unseals by itself (bounded backoff).
                server_a = start_server(vault_a, port=port_a)
                assert _wait_health(c, 200, timeout=40).status_code == 200
                assert c.get(SECRET).json()["value"] == "b-value"
        finally:
            server_b.stop()
    finally:
        server_a.stop()


def _abuse(base: str, server_a: object, unsealer: str, reader: str, other: str) -> None:
    """Who may call transit on A: write encrypts, read decrypts, nothing else passes."""
    from server_proc import ServerProc

    assert isinstance(server_a, ServerProc)
    plaintext = base64.b64encode(b"k" * 32).decode()
    with server_a.client() as anon:
        resp = anon.post(f"/v1/transit/encrypt/{KEY}", json={"plaintext": plaintext})
        assert resp.status_code in (401, 403)
        assert "errors" in resp.json()
    with server_a.client(unsealer) as c:
        made = c.post(f"/v1/transit/encrypt/{KEY}", json={"plaintext": plaintext})
        assert made.status_code == 200, made.text
        ciphertext = made.json()["data"]["ciphertext"]
        assert ciphertext.startswith("vault:v1:")
        back = c.post(f"/v1/transit/decrypt/{KEY}", json={"ciphertext": ciphertext})
        assert back.json()["data"]["plaintext"] == plaintext
        # Holding a key's capabilities does not let one create keys.
        assert c.post("/v1/transit/keys/mine").status_code == 403
        tampered = ciphertext[:-4] + ("AAAA" if not ciphertext.endswith("AAAA") else "BBBB")
        bad = c.post(f"/v1/transit/decrypt/{KEY}", json={"ciphertext": tampered})
        assert bad.status_code == 400
        assert c.post("/v1/transit/encrypt/..", json={"plaintext": plaintext}).status_code in (
            400,
            403,
            404,
        )
    # Vault's own client speaks to keysafe's transit unchanged.
    import hvac

    vault_client = hvac.Client(
        url=base, token=unsealer, verify=str(server_a.vault.tls.ca_cert), timeout=30
    )
    wrapped = vault_client.secrets.transit.encrypt_data(name=KEY, plaintext=plaintext)
    opened = vault_client.secrets.transit.decrypt_data(
        name=KEY, ciphertext=wrapped["data"]["ciphertext"]
    )
    assert opened["data"]["plaintext"] == plaintext
    with server_a.client(reader) as c:
        denied = c.post(f"/v1/transit/encrypt/{KEY}", json={"plaintext": plaintext})
        assert denied.status_code == 403
        assert "errors" in denied.json()
        ok = c.post(f"/v1/transit/decrypt/{KEY}", json={"ciphertext": ciphertext})
        assert ok.status_code == 200
    with server_a.client(other) as c:
        for op, body in (
            ("encrypt", {"plaintext": plaintext}),
            ("decrypt", {"ciphertext": ciphertext}),
        ):
            assert c.post(f"/v1/transit/{op}/{KEY}", json=body).status_code == 403
        # A key of its own that does not exist: not found, nothing created.
        assert c.post("/v1/transit/encrypt/other", json={"plaintext": plaintext}).status_code == 404
    with server_a.root() as c:
        events = c.get("/api/v1/audit/events", params={"limit": 1000})
        assert events.status_code == 200, events.text
        seen = {(e["operation"], e["outcome"]) for e in events.json()["events"]}
        assert ("transit:create-key", "ok") in seen
        assert ("transit:encrypt", "ok") in seen
        assert ("transit:decrypt", "ok") in seen
        assert ("transit:encrypt", "denied") in seen  # the reader's attempt
