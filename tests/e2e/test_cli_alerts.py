"""Alerts end to end: ``keysafe up``'s background job finds a first read of a path by a
key with a learned baseline, the signed webhook added with ``keysafe alert hook add``
receives it, and ``keysafe alerts`` / ``alert ack`` show and acknowledge it."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import pytest

from keysafe.monitor.notify import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature

if TYPE_CHECKING:
    from tests.e2e.conftest import Vault

POLICY = '[[rule]]\npath = "e2e/alerts/*"\ncapabilities = ["read"]\n'
SECRET = "e2e-webhook-signing-secret-0123456789"


class Receiver:
    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.got = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                receiver.got.set()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/keysafe"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


def seed_baseline(home: Path, actor: str) -> None:
    """Two weeks of learned history for ``actor``: reads of e2e/alerts/A from loopback at
    any hour, about two a minute (what the job would have learned in production)."""
    now_us = time.time_ns() // 1000
    state = {
        "v": 1,
        "first_at": now_us - 14 * 86_400_000_000,
        "events": 20_000,
        "hours": [120] * 168,
        "sources": {"127.0.0.1": "127.0.0.0/24"},
        "networks": ["127.0.0.0/24"],
        "paths": ["e2e/alerts/A"],
        "rate": [2] * 1000,
        "denied": [0] * 1000,
        "minute": now_us // 60_000_000 - 1,
        "minute_ok": 0,
        "minute_denied": 0,
    }
    with sqlite3.connect(home / "data" / "keysafe.db", timeout=10) as db:
        db.execute(
            "INSERT OR REPLACE INTO alert_baselines (actor, state, updated_at) VALUES (?, ?, ?)",
            (actor, orjson.dumps(state), now_us),
        )


def test_an_anomaly_reaches_the_webhook_and_the_cli(
    vault: Vault, tmp_path: Path, receiver: Receiver
) -> None:
    secret_file = tmp_path / "hook.key"
    secret_file.write_text(SECRET + "\n")
    added = vault.run("alert", "hook", "add", receiver.url, "--secret-file", str(secret_file))
    assert added.returncode == 0, added.stderr
    hook_id = added.stdout.strip()
    assert SECRET not in added.stdout + added.stderr

    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    assert vault.run("policy", "write", "alerts-read", str(policy)).returncode == 0
    assert vault.run("service", "create", "alerts-svc", "--policy", "alerts-read").returncode == 0
    for path in ("e2e/alerts/A", "e2e/alerts/B"):
        assert vault.run("secret", "set", path, stdin="value").returncode == 0
    created = vault.run("key", "create", "--service", "alerts-svc", "--json")
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    seed_baseline(vault.home, key["id"])

    as_key = {"KEYSAFE_TOKEN": key["key"]}
    assert vault.run("secret", "get", "e2e/alerts/A", env=as_key).returncode == 0
    assert vault.run("secret", "get", "e2e/alerts/B", env=as_key).returncode == 0  # first read

    alert = None
    deadline = time.monotonic() + 40
    while alert is None and time.monotonic() < deadline:
        listed = vault.run("alerts", "--since", "1h", "--json")
        assert listed.returncode == 0, listed.stderr
        mine = [a for a in json.loads(listed.stdout) if a["actor"] == key["id"]]
        alert = mine[0] if mine else None
        if alert is None:
            time.sleep(0.5)
    assert alert is not None, "the anomaly job raised no alert"
    assert alert["kind"] == "new_path"
    assert alert["evidence"]["path"] == "e2e/alerts/B"
    assert [a["kind"] for a in mine] == ["new_path"]  # the usual read raised nothing

    assert receiver.got.wait(30), "the webhook was not called"
    headers, body = receiver.requests[0]
    assert verify_signature(
        SECRET.encode(), headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER]
    )
    assert orjson.loads(body)["id"] == alert["id"]

    human = vault.run("alerts", "--since", "1h")
    assert human.returncode == 0
    assert alert["id"] in human.stdout
    assert vault.run("alert", "ack", alert["id"]).returncode == 0
    again = vault.run("alert", "ack", alert["id"])
    assert again.returncode == 4  # conflict: already acknowledged
    assert again.stderr.startswith("keysafe: ")
    acked = json.loads(vault.run("alerts", "--status", "acknowledged", "--json").stdout)
    assert alert["id"] in [a["id"] for a in acked]

    hooks = json.loads(vault.run("alert", "hook", "list", "--json").stdout)
    assert [h["id"] for h in hooks if h["id"] == hook_id] == [hook_id]
    assert SECRET not in json.dumps(hooks)
    assert vault.run("alert", "hook", "remove", hook_id).returncode == 0
    assert vault.run("alert", "hook", "remove", hook_id).returncode == 3


@pytest.mark.parametrize(
    "args",
    [
        ("alert", "hook", "add", "http://example.com/hook", "--secret-file", "{secret}"),
        ("alert", "hook", "add", "https://example.com/hook"),  # no secret
        ("alert", "hook", "add", "--email", "not-an-address"),
        ("alert", "hook", "add"),
        ("alerts", "--since", "yesterday-ish"),
        ("alerts", "--status", "closed"),
    ],
)
def test_bad_alert_commands_are_usage_errors(
    vault: Vault, tmp_path: Path, args: tuple[str, ...]
) -> None:
    secret_file = tmp_path / "hook.key"
    secret_file.write_text(SECRET)
    result = vault.run(*(a.replace("{secret}", str(secret_file)) for a in args))
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith("keysafe: ")
    assert "Traceback" not in result.stderr


def test_a_key_cannot_read_alerts(vault: Vault) -> None:
    denied = vault.run("alerts", env={"KEYSAFE_TOKEN": "ks_live_notarealkey"})
    assert denied.returncode == 6
