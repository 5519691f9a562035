"""--verify against local HTTPS fakes of the providers' APIs, on loopback only."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from scan_fakes import Fakes

from keysafe.crypto.tls import ensure_local_tls
from keysafe.errors import InvalidInput
from keysafe.scan import verify
from keysafe.scan.models import Finding

F = Fakes(seed=83)
LIVE_GH, DEAD_GH, FLAKY_GH, SLOW_GH, MOVED_GH = (F.github() for _ in range(5))
LIVE_SLACK, DEAD_SLACK = F.slack_bot(), F.slack_bot()
SEEN: list[tuple[str, str]] = []  # (path, credential header) of every request


class Provider(BaseHTTPRequestHandler):
    """GitHub's /user and Slack's auth.test, answering by which token they get."""

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self, status: int, doc: object, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        auth = self.headers.get("Authorization", "")
        SEEN.append((self.path, auth))
        token = auth.removeprefix("token ")
        if self.path != "/user":
            self._answer(404, {})
        elif token == LIVE_GH:
            self._answer(200, {"login": "octo"})
        elif token == DEAD_GH:
            self._answer(401, {"message": "Bad credentials"})
        elif token == SLOW_GH:
            time.sleep(1)
            self._answer(200, {})
        elif token == MOVED_GH:
            self._answer(302, {}, {"Location": "https://127.0.0.1:1/steal"})
        else:
            self._answer(503, {})

    def do_POST(self) -> None:
        auth = self.headers.get("Authorization", "")
        SEEN.append((self.path, auth))
        token = auth.removeprefix("Bearer ")
        if token == LIVE_SLACK:
            self._answer(200, {"ok": True})
        else:
            self._answer(200, {"ok": False, "error": "invalid_auth"})


class TlsServer(ThreadingHTTPServer):
    """HTTPS with the handshake in each request's thread, so a client that refuses the
    certificate or hangs up early never stalls or leaks the server."""

    daemon_threads = True
    context: ssl.SSLContext

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except OSError:
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        except OSError:
            pass  # the client timed out and went away
        finally:
            tls.close()


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tls = ensure_local_tls(tmp_path_factory.mktemp("tls"))
    server = TlsServer(("127.0.0.1", 0), Provider)
    server.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.context.load_cert_chain(tls.cert, tls.key)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}", tls.ca_cert
    server.shutdown()
    server.server_close()


def finding(rule: str, secret: str) -> Finding:
    return Finding(rule, rule, "a.env", 1, 1, secret)


# (rule, secret, expected verification)
CASES: list[tuple[str, str, str]] = [
    ("github-token", LIVE_GH, "live"),
    ("github-token", DEAD_GH, "revoked"),
    ("github-token", FLAKY_GH, "unknown"),  # 503: no retry, no verdict
    ("github-token", SLOW_GH, "unknown"),  # timeout
    ("github-token", MOVED_GH, "unknown"),  # a redirect is never followed
    ("slack-token", LIVE_SLACK, "live"),
    ("slack-token", DEAD_SLACK, "revoked"),
    ("generic-secret-assignment", "Kq7xVb9Lm2pQ8rT7", "unknown"),  # no probe
]


def test_each_finding_is_marked(fake: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    base, ca = fake
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    found = [finding(rule, secret) for rule, secret, _ in CASES]
    found.append(finding("github-token", LIVE_GH))  # a second copy: verified once
    SEEN.clear()
    verify.verify(found, endpoints={"github": base, "slack": base}, timeout=0.5)
    assert [f.verification for f in found] == [*(v for _, _, v in CASES), "live"]
    assert [a for p, a in SEEN if a == f"token {LIVE_GH}"] == [f"token {LIVE_GH}"]
    assert sum(1 for p, _ in SEEN if p == "/user") == 5  # one call each, no retries
    assert not any(p == "/steal" for p, _ in SEEN)


def test_an_untrusted_endpoint_is_unknown_not_live(fake: tuple[str, Path]) -> None:
    base, _ = fake  # no SSL_CERT_FILE: the fake's certificate is not trusted
    found = [finding("github-token", LIVE_GH)]
    verify.verify(found, endpoints={"github": base}, timeout=2)
    assert found[0].verification == "unknown"


@pytest.mark.parametrize(
    "pair", ["github", "nobody=https://x", "github=http://127.0.0.1:1", "=https://x"]
)
def test_bad_endpoint_options_are_refused(pair: str) -> None:
    with pytest.raises(InvalidInput):
        verify.parse_endpoints([pair])


def test_cli_only_verified_reports_live_credentials(fake: tuple[str, Path], tmp_path: Path) -> None:
    base, ca = fake
    (tmp_path / "a.env").write_text(f"A={LIVE_GH}\nB={DEAD_GH}\n")
    cmd = [sys.executable, "-m", "keysafe.scan", str(tmp_path), "--no-progress", "-f", "json"]
    env = {**os.environ, "SSL_CERT_FILE": str(ca)}
    args = ["--verify-endpoint", f"github={base}"]
    both = subprocess.run([*cmd, "--verify", *args], env=env, capture_output=True, text=True)
    marks = sorted(f["verification"] for f in json.loads(both.stdout)["findings"])
    assert marks == ["live", "revoked"]
    live = subprocess.run([*cmd, "--only-verified", *args], env=env, capture_output=True, text=True)
    assert live.returncode == 1
    assert [f["line"] for f in json.loads(live.stdout)["findings"]] == [1]


def test_reports_carry_the_verification_only_when_asked() -> None:
    from keysafe.scan import output
    from keysafe.scan.rules import builtin_rules

    plain, checked = finding("github-token", LIVE_GH), finding("github-token", LIVE_GH)
    checked.verification = "revoked"
    assert "verification" not in json.loads(output.to_json([plain]))["findings"][0]
    assert json.loads(output.to_json([checked]))["findings"][0]["verification"] == "revoked"
    assert output.to_text([checked]).splitlines()[0].endswith("[revoked]")
    sarif = json.loads(output.to_sarif([checked], builtin_rules()))
    assert sarif["runs"][0]["results"][0]["properties"]["verification"] == "revoked"
