"""Notifications for real: a local HTTP server checks webhook signatures, a down endpoint
is retried with backoff and dead-lettered, a slow one delays no request, and alerts are
e-mailed through a local SMTP server (aiosmtpd). On SQLite and PostgreSQL."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiosmtpd.controller import Controller
from alertkit import make_vault, raise_alert
from sqlalchemy import Engine, select
from vaultkit import Vault

from keysafe.errors import InvalidInput
from keysafe.monitor.notify import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from keysafe.monitor.outbox import Outbox
from keysafe.server.app import create_app, with_fast_paths
from keysafe.store.engine import write_txn
from keysafe.store.tables_alerts import alert_hooks, alert_outbox

SECRET = b"whsec-0123456789abcdef-test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def alert_vault(engine: Engine, tmp_path: Path) -> Iterator[Callable[..., Vault]]:
    made: list[Vault] = []

    def make(**overrides: Any) -> Vault:
        made.append(make_vault(engine, tmp_path, **overrides))
        return made[-1]

    yield make
    for vault in made:
        vault.svc.alerts.close()
        vault.svc.audit.stop()


class Receiver:
    """A local webhook endpoint: records requests; can answer 500 or hold requests."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.status = 204
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.entered.set()
                receiver.release.wait(30)
                receiver.requests.append((dict(self.headers), body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def add_webhook(vault: Vault, url: str) -> str:
    with write_txn(vault.svc.engine) as conn:
        hook = vault.svc.alerts.hooks.add_webhook(conn, url, SECRET, "ops", "tok_test")
    return str(hook["id"])


def outbox_rows(vault: Vault) -> list[Any]:
    with vault.svc.engine.connect() as conn:
        return list(conn.execute(select(alert_outbox)))


def test_webhook_is_signed_and_delivered(
    alert_vault: Callable[..., Vault], receiver: Receiver
) -> None:
    vault = alert_vault()
    add_webhook(vault, receiver.url)
    alert_id = raise_alert(vault)
    # Queued, not sent: nothing reaches the receiver until the drainer runs.
    assert receiver.requests == []
    assert vault.svc.alerts.outbox.drain_once() == 1
    [(headers, body)] = receiver.requests
    assert verify_signature(SECRET, headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])
    assert not verify_signature(
        b"another-secret-entirely", headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER]
    )
    assert not verify_signature(
        SECRET, headers[TIMESTAMP_HEADER], body + b" ", headers[SIGNATURE_HEADER]
    )
    old = str(int(headers[TIMESTAMP_HEADER]) - 3600)
    assert not verify_signature(SECRET, old, body, headers[SIGNATURE_HEADER])
    doc = orjson.loads(body)
    assert doc["id"] == alert_id
    assert doc["kind"] == "new_network"
    assert doc["evidence"]["network"] == "203.0.113.0/24"
    [row] = outbox_rows(vault)
    assert (row.status, row.attempts) == ("delivered", 1)
    # A repeat finding within the window extends the alert and is not sent again.
    raise_alert(vault)
    assert vault.svc.alerts.outbox.drain_once() == 0
    assert vault.svc.alerts.get(alert_id)["count"] == 2


def test_the_signing_secret_is_sealed_in_the_database(alert_vault: Callable[..., Vault]) -> None:
    vault = alert_vault()
    hook_id = add_webhook(vault, "https://ops.example/hook")
    with vault.svc.engine.connect() as conn:
        row = conn.execute(select(alert_hooks).where(alert_hooks.c.id == hook_id)).one()
    stored = b"".join(
        bytes(v) if isinstance(v, bytes | memoryview) else str(v).encode() for v in row
    )
    assert SECRET not in stored
    assert vault.svc.alerts.hooks.secret(hook_id) == SECRET
    assert all("secret" not in k or k == "signed" for k in vault.svc.alerts.hooks.list_hooks()[0])


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("http://ops.example/hook", SECRET),  # plain HTTP off the machine
        ("http://10.0.0.1/hook", SECRET),
        ("ftp://ops.example/hook", SECRET),
        ("https:///nohost", SECRET),
        ("https://ops.example/hook", b"short"),
        ("https://ops.example/hook", b"x" * 2000),
    ],
)
def test_bad_hooks_are_refused(alert_vault: Callable[..., Vault], url: str, secret: bytes) -> None:
    vault = alert_vault()
    with pytest.raises(InvalidInput), write_txn(vault.svc.engine) as conn:
        vault.svc.alerts.hooks.add_webhook(conn, url, secret, "", "tok_test")


def test_a_down_endpoint_is_retried_with_backoff_then_dead_lettered(
    alert_vault: Callable[..., Vault],
) -> None:
    vault = alert_vault(alert_max_attempts=3, alert_retry_base_seconds=0.05)
    add_webhook(vault, f"http://127.0.0.1:{free_port()}/down")  # nothing listens there
    alert_id = raise_alert(vault)
    outbox = vault.svc.alerts.outbox
    assert outbox.drain_once() == 1
    [row] = outbox_rows(vault)
    assert (row.status, row.attempts) == ("pending", 1)
    assert "Connect" in row.last_error
    assert row.next_at > row.created_at  # not due again at once
    deadline = time.monotonic() + 30
    while outbox_rows(vault)[0].status == "pending" and time.monotonic() < deadline:
        outbox.drain_once()
        time.sleep(0.02)
    [row] = outbox_rows(vault)
    assert (row.status, row.attempts) == ("dead", 3)
    [dead] = outbox.messages("dead")
    assert dead["alert_id"] == alert_id
    assert dead["last_error"]
    assert outbox.drain_once() == 0  # dead letters are not retried


def test_backoff_doubles_with_jitter() -> None:
    outbox = Outbox(
        None,  # type: ignore[arg-type]  # only the arithmetic is used
        None,  # type: ignore[arg-type]
        {},
        lambda _: None,
        base_delay_seconds=5.0,
        max_delay_seconds=60.0,
        rng=random.Random(1),
    )
    for attempts, nominal in [(1, 5.0), (2, 10.0), (3, 20.0), (4, 40.0), (5, 60.0), (9, 60.0)]:
        delays = [outbox.backoff_seconds(attempts) for _ in range(50)]
        assert all(0.5 * nominal <= d <= 1.5 * nominal for d in delays)
        assert len(set(delays)) > 1  # jittered


def test_a_failing_receiver_is_retried_until_it_answers(
    alert_vault: Callable[..., Vault], receiver: Receiver
) -> None:
    vault = alert_vault(alert_retry_base_seconds=0.01)
    add_webhook(vault, receiver.url)
    raise_alert(vault)
    receiver.status = 503
    outbox = vault.svc.alerts.outbox
    assert outbox.drain_once() == 1
    assert outbox_rows(vault)[0].last_error == "HTTP 503"
    receiver.status = 200
    time.sleep(0.05)
    assert outbox.drain_once() == 1
    [row] = outbox_rows(vault)
    assert (row.status, row.attempts) == ("delivered", 2)
    assert len(receiver.requests) == 2


@pytest.mark.anyio
async def test_a_slow_endpoint_does_not_hold_up_requests(
    alert_vault: Callable[..., Vault], receiver: Receiver
) -> None:
    vault = alert_vault()
    add_webhook(vault, receiver.url)
    receiver.release.clear()  # the endpoint hangs until released
    raise_alert(vault)
    vault.svc.alerts.outbox.kick()  # what the job does: delivery on its own thread
    assert receiver.entered.wait(10)
    app = with_fast_paths(create_app(vault.svc.settings, services=vault.svc))
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
    root = {"Authorization": f"Bearer {vault.root_token}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        # While the delivery is stuck inside the endpoint, requests are answered.
        for i in range(20):
            put = await client.put(f"/api/v1/secrets/app/K{i}", json={"value": "v"}, headers=root)
            assert put.status_code == 200, put.text
            got = await client.get(f"/api/v1/secrets/app/K{i}", headers=root)
            assert got.status_code == 200
        listed = await client.get("/api/v1/alerts?since=1h", headers=root)
        assert listed.status_code == 200
        assert len(listed.json()["alerts"]) == 1
    assert receiver.requests == []  # still not answered
    assert outbox_rows(vault)[0].status == "pending"
    receiver.release.set()
    deadline = time.monotonic() + 10
    while outbox_rows(vault)[0].status != "delivered" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert outbox_rows(vault)[0].status == "delivered"


class SmtpSink:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[SmtpSink, int]]:
    sink = SmtpSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    yield sink, port
    controller.stop()


def test_alerts_are_emailed_through_the_configured_smtp_server(
    alert_vault: Callable[..., Vault], smtp: tuple[SmtpSink, int]
) -> None:
    sink, port = smtp
    vault = alert_vault(
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_from="keysafe@example.org",
        smtp_to=["oncall@example.org"],
    )
    with write_txn(vault.svc.engine) as conn:
        vault.svc.alerts.hooks.add_email(conn, "security@example.org", "", "tok_test")
    alert_id = raise_alert(vault)
    assert vault.svc.alerts.outbox.drain_once() == 2
    recipients = sorted(r for m in sink.messages for r in m.rcpt_tos)
    assert recipients == ["oncall@example.org", "security@example.org"]
    text = sink.messages[0].content.decode()
    assert "Subject: [keysafe] high new_network for key_0123" in text
    assert alert_id in text
    assert "203.0.113.0/24" in text
    assert {r.status for r in outbox_rows(vault)} == {"delivered"}


def test_email_without_an_smtp_server_is_dead_lettered(
    alert_vault: Callable[..., Vault],
) -> None:
    vault = alert_vault(alert_max_attempts=1)
    with write_txn(vault.svc.engine) as conn:
        vault.svc.alerts.hooks.add_email(conn, "security@example.org", "", "tok_test")
    raise_alert(vault)
    assert vault.svc.alerts.outbox.drain_once() == 1
    [dead] = vault.svc.alerts.outbox.messages("dead")
    assert "no email notifier" in dead["last_error"]
