"""Signed partner leak reports against a real ``keysafe server`` over HTTPS (both DBs).

A test ECDSA P-256 key plays GitHub's secret-scanning partner programme: its public key
is configured in ``KEYSAFE_LEAK_REPORT_KEYS`` (GitHub's JSON shape), reports are signed
over the raw body, and the answer is GitHub's feedback array.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from server_proc import ServerProc, database_url, init_vault, running

from keysafe.crypto.signatures import sign_for_tests

ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
KEY_ID = "f9525bf080f75b3506ca1ead061add62b8633a346606dc5fe544e29231c6ee0d"


@dataclass
class Partner:
    server: ServerProc
    private_key: ec.EllipticCurvePrivateKey

    def post(
        self, body: bytes, *, key_id: str = KEY_ID, signature: str | None = None
    ) -> httpx.Response:
        headers = {
            "Content-Type": "application/json",
            "Github-Public-Key-Identifier": key_id,
            "Github-Public-Key-Signature": signature or sign_for_tests(self.private_key, body),
        }
        with self.server.client() as client:
            return client.post("/api/v1/leaks", content=body, headers=headers)


@pytest.fixture(scope="module", params=ENGINES)
def partner(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Partner]:
    tmp = tmp_path_factory.mktemp(f"leaks-{request.param}")
    private = ec.generate_private_key(ec.SECP256R1())
    pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    keys_file = tmp / "partner-keys.json"
    keys_file.write_text(
        json.dumps({"public_keys": [{"key_identifier": KEY_ID, "key": pem, "is_current": True}]})
    )
    with database_url(request.param, tmp) as url:
        vault = init_vault(request.param, tmp, url)
        with running(vault, extra_env={"KEYSAFE_LEAK_REPORT_KEYS": str(keys_file)}) as server:
            yield Partner(server, private)


def _new_key(server: ServerProc, name: str) -> dict[str, Any]:
    with server.root() as root:
        text = '[[rule]]\npath = "leak/*"\ncapabilities = ["read"]\n'
        assert root.put("/api/v1/policies/leak", json={"text": text}).status_code == 200
        made = root.post("/api/v1/services", json={"name": name, "policies": ["leak"]})
        assert made.status_code == 200, made.text
        key = root.post("/api/v1/keys", json={"service": name})
        assert key.status_code == 200, key.text
        doc: dict[str, Any] = key.json()
        return doc


def _events(server: ServerProc) -> list[dict[str, Any]]:
    with server.root() as root:
        events: list[dict[str, Any]] = root.get(
            "/api/v1/audit/events", params={"limit": 1000}
        ).json()["events"]
        return events


def _report(token: str, **extra: Any) -> bytes:
    match = {
        "token": token,
        "type": "keysafe_api_key",
        "url": "https://github.com/octo/app/blob/abc123/.env",
        "source": "content",
        **extra,
    }
    return json.dumps([match]).encode()


@pytest.mark.timeout(120)
def test_signed_report_revokes_the_key_and_opens_an_incident(partner: Partner) -> None:
    key = _new_key(partner.server, "svc-signed")
    other = "ghp_" + "x" * 36  # not ours: a false positive
    body = json.dumps(
        [
            json.loads(_report(key["key"]))[0],
            {"token": other, "type": "keysafe_api_key", "url": "u", "source": "content"},
        ]
    ).encode()
    answer = partner.post(body)
    assert answer.status_code == 200, answer.text
    assert answer.json() == [
        {
            "token_hash": hashlib.sha256(key["key"].encode()).hexdigest(),
            "token_type": "keysafe_api_key",
            "label": "true_positive",
        },
        {
            "token_hash": hashlib.sha256(other.encode()).hexdigest(),
            "token_type": "keysafe_api_key",
            "label": "false_positive",
        },
    ]
    assert key["key"] not in answer.text
    with partner.server.client(key["key"]) as leaked:
        assert leaked.get("/api/v1/secrets/leak/X").status_code == 401
    with partner.server.root() as root:
        assert root.get(f"/api/v1/keys/{key['id']}").json()["revoked"] is True
        incidents = root.get("/api/v1/incidents").json()["incidents"]
        mine = [i for i in incidents if i["source"] == f"partner:{KEY_ID[:40]}"]
        assert mine, incidents
        shown = root.get(f"/api/v1/incidents/{mine[0]['id']}").json()
    assert ("key", key["id"]) in {(i["kind"], i["ref"]) for i in shown["items"]}
    verify = next(s for s in shown["steps"] if s["phase"] == "verify")
    assert verify["outcome"] == "done"
    assert "presented and refused" in verify["detail"]
    assert key["key"] not in json.dumps(_events(partner.server))


@pytest.mark.timeout(120)
def test_forged_reports_are_refused_and_audited(partner: Partner) -> None:
    key = _new_key(partner.server, "svc-forged")
    body = _report(key["key"])
    other = ec.generate_private_key(ec.SECP256R1())
    attempts = [
        partner.post(body, signature=sign_for_tests(other, body)),  # someone else's key
        partner.post(body, key_id="unknown-key-id"),  # unknown key id
        partner.post(body + b" ", signature=sign_for_tests(partner.private_key, body)),  # edited
        partner.post(body, signature="not base64!"),
    ]
    with partner.server.client() as client:
        # GitHub's shape without any signature.
        attempts.append(client.post("/api/v1/leaks", content=body))
    for answer in attempts:
        assert answer.status_code == 401, answer.text
        assert answer.json()["code"] == "unauthenticated"
    with partner.server.root() as root:
        assert root.get(f"/api/v1/keys/{key['id']}").json()["revoked"] is False
    forged = [e for e in _events(partner.server) if e["operation"] == "leak:forged"]
    assert len(forged) >= len(attempts)
    assert all(e["outcome"] == "denied" for e in forged)


@pytest.mark.timeout(120)
def test_replayed_and_stale_reports_are_refused(partner: Partner) -> None:
    key = _new_key(partner.server, "svc-replay")
    body = _report(key["key"])
    assert partner.post(body).status_code == 200
    again = partner.post(body)
    assert again.status_code == 409, again.text
    stale_key = _new_key(partner.server, "svc-stale")
    old = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    stale = partner.post(_report(stale_key["key"], timestamp=old))
    assert stale.status_code == 409, stale.text
    with partner.server.root() as root:
        # The stale report changed nothing.
        assert root.get(f"/api/v1/keys/{stale_key['id']}").json()["revoked"] is False
    fresh = datetime.now(UTC).isoformat()
    assert partner.post(_report(stale_key["key"], timestamp=fresh)).status_code == 200
    replays = [e for e in _events(partner.server) if e["operation"] == "leak:replay"]
    assert len(replays) >= 2


@pytest.mark.timeout(120)
def test_a_report_for_an_already_revoked_key_still_opens_a_complete_incident(
    partner: Partner,
) -> None:
    key = _new_key(partner.server, "svc-dead")
    with partner.server.root() as root:
        assert root.delete(f"/api/v1/keys/{key['id']}").status_code in (200, 204)
    answer = partner.post(_report(key["key"], url="https://github.com/octo/other"))
    assert answer.status_code == 200
    assert answer.json()[0]["label"] == "true_positive"
    with partner.server.root() as root:
        incidents = root.get("/api/v1/incidents").json()["incidents"]
        found = None
        for summary in incidents:
            shown = root.get(f"/api/v1/incidents/{summary['id']}").json()
            if ("key", key["id"]) in {(i["kind"], i["ref"]) for i in shown["items"]}:
                found = shown
    assert found is not None
    contain = next(s for s in found["steps"] if s["phase"] == "contain")
    assert contain["outcome"] == "already"
    assert not [s for s in found["steps"] if s["outcome"] == "failed"]


def test_unsigned_scanner_reports_still_work(partner: Partner, tmp_path: Path) -> None:
    """``keysafe scan --report`` posts the unsigned shape: the credential is its proof."""
    key = _new_key(partner.server, "svc-scanner")
    with partner.server.client() as anonymous:
        answer = anonymous.post(
            "/api/v1/leaks",
            json={"credentials": [{"credential": key["key"], "location": "src/app.py:3"}]},
        )
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    assert doc["results"][0]["status"] == "revoked"
    assert doc["incident"].startswith("inc_")
