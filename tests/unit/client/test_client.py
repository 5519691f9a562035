"""The SDK against an in-memory transport: requests, replies and error mapping."""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from keysafe import errors
from keysafe.client import Client, Secret

Handler = Callable[[httpx.Request], httpx.Response]
TOKEN = "ks_tok_test"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYSAFE_HOME", str(tmp_path))
    for var in ("KEYSAFE_ADDR", "KEYSAFE_TOKEN", "KEYSAFE_CACERT"):
        monkeypatch.delenv(var, raising=False)


def make(handler: Handler, token: str | None = TOKEN) -> Client:
    return Client("https://vault.test:8200", token, transport=httpx.MockTransport(handler))


def problem(code: str, status: int, detail: str = "nope") -> httpx.Response:
    doc = {"type": f"urn:keysafe:problem:{code}", "title": "t", "status": status}
    doc |= {"detail": detail, "code": code}
    return httpx.Response(status, json=doc, headers={"content-type": "application/problem+json"})


@pytest.mark.parametrize(
    ("code", "status", "cls"),
    [(c.code, c.status, c) for c in errors.ERRORS_BY_CODE.values() if c.status],
)
def test_problem_documents_become_the_same_errors(
    code: str, status: int, cls: type[errors.KeysafeError]
) -> None:
    client = make(lambda _r: problem(code, status, "detail text"))
    with client, pytest.raises(cls) as info:
        client.get("a/b")
    assert type(info.value) is cls
    assert info.value.detail == "detail text"


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, errors.InvalidInput),
        (401, errors.Unauthenticated),
        (403, errors.Forbidden),
        (404, errors.NotFound),
        (409, errors.Conflict),
        (503, errors.Unavailable),
        (500, errors.ServerError),
        (502, errors.ServerError),
    ],
)
def test_non_problem_errors_map_by_status(status: int, cls: type[errors.KeysafeError]) -> None:
    client = make(lambda _r: httpx.Response(status, text="<html>oops</html>"))
    with client, pytest.raises(cls):
        client.list_secrets()


def test_problem_extras_are_kept() -> None:
    def handler(_r: httpx.Request) -> httpx.Response:
        doc = {"code": "cas_mismatch", "detail": "stale", "current_version": 4}
        return httpx.Response(409, json=doc)

    with make(handler) as client, pytest.raises(errors.CasMismatch) as info:
        client.put_secret("a/b", "v", cas=3)
    assert info.value.extra == {"current_version": 4}


def test_get_secret_request_and_reply() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        doc = {"path": "a/b", "version": 2, "value": "s3cr3t", "metadata": {"owner": "me"}}
        return httpx.Response(200, json=doc)

    with make(handler) as client:
        secret = client.get_secret("a/b", version=2)
    assert secret == Secret(path="a/b", version=2, value="s3cr3t", metadata={"owner": "me"})
    assert "s3cr3t" not in repr(secret)
    request = seen[0]
    assert request.url.path == "/api/v1/secrets/a/b"
    assert request.url.params["version"] == "2"
    assert request.headers["authorization"] == "Bearer ks_tok_test"


def test_put_sends_value_and_cas() -> None:
    bodies: list[object] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json={"path": "a/b", "version": 5, "created_at": "t"})

    with make(handler) as client:
        assert client.put_secret("a/b", "v", cas=4) == 5
        assert client.put_secret("a/b", "w") == 5
    assert bodies == [{"value": "v", "cas": 4}, {"value": "w"}]


def test_list_query_parameters() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert dict(request.url.params) == {
            "prefix": "payments/dev/",
            "recursive": "false",
            "values": "true",
        }
        return httpx.Response(
            200, json={"secrets": [{"path": "payments/dev/A", "version": 1, "value": "x"}]}
        )

    with make(handler) as client:
        (entry,) = client.list_secrets("payments/dev/", recursive=False, values=True)
    assert entry.value == "x"


@pytest.mark.parametrize("path", ["", "a/../b", "a//b", "a/b?x=1", "a b", "/a", "a:history"])
def test_malformed_paths_never_leave_the_client(path: str) -> None:
    def handler(_r: httpx.Request) -> httpx.Response:
        raise AssertionError("no request expected")

    with make(handler) as client, pytest.raises(errors.InvalidInput):
        client.get_secret(path)


def test_health_answers_when_sealed() -> None:
    body = {"initialized": True, "sealed": True, "version": "0.1.0"}
    with make(lambda _r: httpx.Response(503, json=body)) as client:
        health = client.health()
    assert health.sealed is True


def test_connection_errors_become_connection_failed() -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    client = make(refused)
    with client, pytest.raises(errors.ConnectionFailed, match="connection refused"):
        client.seal_status()


def test_tls_failures_become_connection_failed() -> None:
    def bad_cert(request: httpx.Request) -> httpx.Response:
        cause = ssl.SSLCertVerificationError("certificate verify failed")
        cause.verify_message = "self-signed certificate"
        raise httpx.ConnectError("tls", request=request) from cause

    client = make(bad_cert)
    with client, pytest.raises(errors.ConnectionFailed, match="KEYSAFE_CACERT"):
        client.seal_status()


def test_timeouts_become_connection_failed() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with make(slow) as client, pytest.raises(errors.ConnectionFailed, match="timed out"):
        client.get("a/b")


def test_no_address_anywhere_is_connection_failed() -> None:
    with pytest.raises(errors.ConnectionFailed, match="keysafe up"):
        Client()


def test_missing_ca_bundle_is_connection_failed(tmp_path: Path) -> None:
    with pytest.raises(errors.ConnectionFailed, match="CA bundle"):
        Client("https://h:1", "t", tmp_path / "missing.pem")


def test_redirects_are_not_followed() -> None:
    def handler(_r: httpx.Request) -> httpx.Response:
        return httpx.Response(307, headers={"location": "https://evil.test/"})

    with make(handler) as client, pytest.raises(errors.KeysafeError):
        client.get("a/b")


def test_token_ids_are_quoted_into_one_segment() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path.decode())
        return httpx.Response(204)

    with make(handler) as client:
        client.revoke_token("../sys/seal")
    assert seen == ["/api/v1/tokens/..%2Fsys%2Fseal"]


def test_no_token_means_no_authorization_header() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert "authorization" not in request.headers
        return httpx.Response(200, json={"initialized": True, "sealed": False})

    with make(handler, token=None) as client:
        assert client.seal_status().sealed is False
