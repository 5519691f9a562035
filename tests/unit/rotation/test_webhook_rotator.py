"""The webhook rotator against a real local HTTP server: signed calls, confirmations,
refusals, timeouts, and URLs it must not call."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from keysafe.errors import InvalidInput, NotFound, RotationFailed
from keysafe.rotation.rotators.base import RotationContext
from keysafe.rotation.rotators.webhook import SIGNATURE_HEADER, WebhookRotator

SIGNING_KEY = "whsec-signing-key"


@dataclass
class Endpoint:
    url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    reply: tuple[int, bytes] = (200, b'{"ok": true}')
    delay: float = 0.0


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    state = Endpoint(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            signature = self.headers[SIGNATURE_HEADER]
            ts, _, mac = signature.partition(",v1=")
            expected = hmac.new(
                SIGNING_KEY.encode(), ts.removeprefix("t=").encode() + b"." + body, hashlib.sha256
            ).hexdigest()
            state.received.append(
                {"doc": json.loads(body), "valid": hmac.compare_digest(mac, expected)}
            )
            time.sleep(state.delay)
            status, reply = state.reply
            try:
                self.send_response(status)
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the caller timed out and left

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/rotate"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def _ctx(url: str, step: str = "apply", **extra: str) -> RotationContext:
    def read_secret(path: str) -> str:
        if path != "hooks/SIGN":
            raise NotFound(f"no secret at {path}")
        return SIGNING_KEY

    return RotationContext(
        path="a/HOOK",
        options={"url": url, "signing-secret": "hooks/SIGN", **extra},
        current="old-value",
        read_secret=read_secret,
        extra={"run_id": "rot_9", "step": step},
    )


def test_signed_apply_verify_retire(endpoint: Endpoint) -> None:
    rotator = WebhookRotator()
    rotator.apply(_ctx(endpoint.url), "new-value")
    rotator.verify(_ctx(endpoint.url, "verify"), "new-value")
    rotator.retire(_ctx(endpoint.url, "retire"), "old-value")
    apply, verify, retire = endpoint.received
    assert all(r["valid"] for r in endpoint.received)
    assert apply["doc"]["value"] == "new-value"
    assert apply["doc"]["rollback"] is False
    assert {apply["doc"]["id"], verify["doc"]["id"]} == {"rot_9"}
    assert verify["doc"]["step"] == "verify"
    assert "value" not in verify["doc"]
    assert verify["doc"]["value_sha256"] == hashlib.sha256(b"new-value").hexdigest()
    assert retire["doc"]["value_sha256"] == hashlib.sha256(b"old-value").hexdigest()
    assert abs(apply["doc"]["timestamp"] - time.time()) < 60


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        ((500, b'{"ok": true}'), "HTTP 500"),
        ((403, b"no"), "HTTP 403"),
        ((200, b'{"ok": false}'), "did not confirm"),
        ((200, b"ok"), "did not confirm"),
        ((200, b"[]"), "did not confirm"),
        ((302, b""), "HTTP 302"),  # redirects are not followed
    ],
)
def test_refusals_fail_the_step(endpoint: Endpoint, reply: tuple[int, bytes], message: str) -> None:
    endpoint.reply = reply
    with pytest.raises(RotationFailed, match=message) as info:
        WebhookRotator().apply(_ctx(endpoint.url), "new-value")
    assert "new-value" not in info.value.detail


def test_timeout_and_unreachable(endpoint: Endpoint) -> None:
    endpoint.delay = 2.5
    with pytest.raises(RotationFailed, match="timed out"):
        WebhookRotator().apply(_ctx(endpoint.url, timeout="1"), "v")
    with pytest.raises(RotationFailed, match="cannot reach"):
        WebhookRotator().apply(_ctx("http://127.0.0.1:9/x"), "v")


def test_missing_signing_secret_fails_the_step(endpoint: Endpoint) -> None:
    ctx = _ctx(endpoint.url)
    ctx = RotationContext(
        ctx.path,
        {**ctx.options, "signing-secret": "hooks/GONE"},
        ctx.current,
        ctx.read_secret,
        extra=ctx.extra,
    )
    with pytest.raises(RotationFailed, match="signing secret"):
        WebhookRotator().apply(ctx, "v")
    assert endpoint.received == []


@pytest.mark.parametrize(
    "options",
    [
        {"url": "http://example.org/x", "signing-secret": "s/S"},  # plain http off loopback
        {"url": "ftp://127.0.0.1/x", "signing-secret": "s/S"},
        {"url": "https://", "signing-secret": "s/S"},
        {"url": "https://example.org/x"},  # no signing secret
        {"url": "https://example.org/x", "signing-secret": "s/S", "timeout": "61"},
        {"url": "https://example.org/x", "signing-secret": "s/S", "command": "/bin/true"},
    ],
)
def test_bad_options(options: dict[str, str]) -> None:
    with pytest.raises(InvalidInput):
        WebhookRotator().check_options(options)


def test_good_options() -> None:
    WebhookRotator().check_options({"url": "https://hooks.example.org/r", "signing-secret": "s/S"})
    WebhookRotator().check_options({"url": "http://localhost:8080/r", "signing-secret": "s/S"})
