"""Several addresses over real sockets: when the SDK and `secret get` move on, and when not."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from keysafe import errors
from keysafe.cli import fastget
from keysafe.client import Client
from keysafe.client._config import resolve
from keysafe.client._failover import MAX_BACKOFF, backoff, split_addrs

Reply = tuple[int, dict[str, object]] | None  # None: hold the request until released
SECRET = {"path": "a/b", "version": 1, "value": "v1", "metadata": {}}


class Node:
    """A tiny real HTTP server that answers each request with ``reply(method)``."""

    def __init__(self, reply: Callable[[str], Reply]) -> None:
        self.reply = reply
        self.seen: list[tuple[str, str]] = []
        self.release = threading.Event()
        node = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                node.seen.append((self.command, self.path))
                out = node.reply(self.command)
                if out is None:
                    node.release.wait(10)
                    return
                status, doc = out
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_PUT = do_POST = _answer

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep pytest's output clean

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.addr = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def problem(code: str, status: int = 503) -> tuple[int, dict[str, object]]:
    return status, {"type": f"urn:keysafe:problem:{code}", "status": status, "code": code}


def ok(method: str) -> Reply:
    return (200, SECRET) if method == "GET" else (200, {"version": 2})


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYSAFE_HOME", str(tmp_path))
    for var in ("KEYSAFE_ADDR", "KEYSAFE_TOKEN", "KEYSAFE_CACERT"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def nodes() -> Iterator[Callable[[Callable[[str], Reply]], Node]]:
    made: list[Node] = []

    def make(reply: Callable[[str], Reply]) -> Node:
        made.append(Node(reply))
        return made[-1]

    yield make
    for node in made:
        node.close()


def closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there once the socket is closed


def test_a_closed_port_then_a_live_node(nodes: Callable[..., Node]) -> None:
    live = nodes(ok)
    dead = closed_port()
    with Client([dead, live.addr], "t", cache_ttl=0) as client:
        assert client.get("a/b") == "v1"
        assert client.addr == live.addr  # sticky: the next request goes there first
        assert client.put_secret("a/b", "x") == 2  # nothing was sent to the closed port
    assert [m for m, _ in live.seen] == ["GET", "PUT"]


def test_sealed_node_then_a_live_one_and_the_client_stays(nodes: Callable[..., Node]) -> None:
    sealed = nodes(lambda _m: problem("sealed"))
    live = nodes(ok)
    with Client(f"{sealed.addr}, {live.addr}", "t", cache_ttl=0) as client:
        assert client.put_secret("a/b", "x") == 2  # sealed refuses before acting
        assert client.get("a/b") == "v1"
    assert len(sealed.seen) == 1  # the second request went straight to the node that worked
    assert [m for m, _ in live.seen] == ["PUT", "GET"]


def test_a_write_that_may_have_arrived_is_never_resent(nodes: Callable[..., Node]) -> None:
    hung = nodes(lambda _m: None)
    live = nodes(ok)
    with Client([hung.addr, live.addr], "t", timeout=0.3, cache_ttl=0) as client:
        with pytest.raises(errors.ConnectionFailed, match="timed out"):
            client.put_secret("a/b", "x")
        assert live.seen == []
        # A read may be sent twice: it moves on after the same timeout.
        assert client.get("a/b") == "v1"
    assert [m for m, _ in live.seen] == ["GET"]


def test_storage_unavailable_moves_only_reads(nodes: Callable[..., Node]) -> None:
    # A connection lost during COMMIT leaves a write's outcome unknown.
    flaky = nodes(lambda _m: problem("storage_unavailable"))
    live = nodes(ok)
    with Client([flaky.addr, live.addr], "t", cache_ttl=0) as client:
        with pytest.raises(errors.StorageUnavailable):
            client.put_secret("a/b", "x")
        assert live.seen == []
        assert client.get("a/b") == "v1"


def test_rate_limits_are_not_a_reason_to_move(nodes: Callable[..., Node]) -> None:
    limited = nodes(lambda _m: problem("rate_limited", 429))
    live = nodes(ok)
    with (
        Client([limited.addr, live.addr], "t", cache_ttl=0) as client,
        pytest.raises(errors.RateLimited),
    ):
        client.get("a/b")
    assert live.seen == []


def test_every_node_sealed_gives_the_servers_answer(nodes: Callable[..., Node]) -> None:
    a, b = nodes(lambda _m: problem("sealed")), nodes(lambda _m: problem("sealed"))
    with Client([a.addr, b.addr], "t") as client, pytest.raises(errors.Sealed):
        client.get("a/b")
    assert len(a.seen) == len(b.seen) == 1


def test_no_node_reachable_names_each_address() -> None:
    one, two = closed_port(), closed_port()
    with Client([one, two], "t") as client, pytest.raises(errors.ConnectionFailed) as info:
        client.get("a/b")
    assert one in str(info.value)
    assert two in str(info.value)
    assert "connection refused" in str(info.value)


def test_backoff_is_short_and_bounded() -> None:
    waits = [backoff(n) for n in range(12)]
    assert waits[0] == 0
    assert waits[1] > 0
    assert waits == sorted(waits)
    assert max(waits) == MAX_BACKOFF


def test_addresses_are_split_normalised_and_deduplicated() -> None:
    assert split_addrs("a:1, http://b:2/ ,,A:1") == ["https://a:1", "http://b:2"]
    assert split_addrs(["a:1,b:2", "c:3"]) == ["https://a:1", "https://b:2", "https://c:3"]
    with pytest.raises(errors.ConnectionFailed):
        split_addrs(" , ")
    with pytest.raises(errors.ConnectionFailed, match="unsupported"):
        split_addrs("https://a:1,ftp://b")


def test_the_profile_token_and_ca_apply_to_every_listed_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "profile.toml").write_text(
        'addr = "https://n1:8200,https://n2:8200"\ntoken = "ks_tok_p"\ncacert = "/ca.pem"\n'
    )
    both = resolve()
    assert both.addr == "https://n1:8200,https://n2:8200"
    assert both.token == "ks_tok_p"
    monkeypatch.setenv("KEYSAFE_ADDR", "https://n2:8200, https://n1:8200")
    assert resolve().token == "ks_tok_p"
    assert resolve().cacert == Path("/ca.pem")
    # One address that is not the profile's: its token must not be sent anywhere.
    monkeypatch.setenv("KEYSAFE_ADDR", "https://n1:8200,https://elsewhere:8200")
    assert resolve().token is None
    assert resolve().cacert is None


def test_fast_secret_get_fails_over_too(
    nodes: Callable[..., Node],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sealed = nodes(lambda _m: problem("sealed"))
    live = nodes(ok)
    monkeypatch.setenv("KEYSAFE_ADDR", f"{closed_port()},{sealed.addr},{live.addr}")
    monkeypatch.setenv("KEYSAFE_TOKEN", "t")
    args = fastget.parse(["secret", "get", "a/b"])
    assert args is not None
    assert fastget.run(args) == 0
    assert capsys.readouterr().out == "v1\n"
    assert len(sealed.seen) == len(live.seen) == 1


def test_fast_secret_get_reports_every_address(monkeypatch: pytest.MonkeyPatch) -> None:
    one, two = closed_port(), closed_port()
    monkeypatch.setenv("KEYSAFE_ADDR", f"{one},{two}")
    args = fastget.parse(["secret", "get", "a/b"])
    assert args is not None
    with pytest.raises(errors.ConnectionFailed) as info:
        fastget.run(args)
    assert one in str(info.value)
    assert two in str(info.value)
