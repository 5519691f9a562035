"""Commands in-process against an in-memory server (httpx.MockTransport)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from keysafe.cli import main
from keysafe.cli.context import State
from keysafe.client import Client

Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Callable[[Handler], None]:
    def install(handler: Handler) -> None:
        def client(_self: State) -> Client:
            return Client("https://vault.test", "ks_tok_x", transport=httpx.MockTransport(handler))

        monkeypatch.setattr(State, "client", client)

    return install


def test_audit_verify_failure_is_exit_1_and_names_the_event(
    serve: Callable[[Handler], None], capsys: pytest.CaptureFixture[str]
) -> None:
    doc = {"ok": False, "events": 40, "first_bad": 17, "reason": "hash chain broken"}
    serve(lambda _r: httpx.Response(200, json=doc))
    assert main.run(["audit", "verify"]) == 1
    captured = capsys.readouterr()
    assert captured.err == "keysafe: audit trail broken at event 17: hash chain broken\n"


def test_audit_verify_json_is_stable(
    serve: Callable[[Handler], None], capsys: pytest.CaptureFixture[str]
) -> None:
    serve(lambda _r: httpx.Response(200, json={"ok": True, "events": 3}))
    assert main.run(["audit", "verify", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "ok": True,
        "events": 3,
        "first_bad": None,
        "reason": None,
        "chain": None,
        "chains": [],
    }


def test_rewrap_loops_until_nothing_remains(
    serve: Callable[[Handler], None], capsys: pytest.CaptureFixture[str]
) -> None:
    remaining = [5, 3, 1, 0]

    def handler(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content) == {"batch": 2}
        left = remaining.pop(0)
        body = {"rewrapped": 2, "remaining": left, "total": 6, "keyring_version": 2}
        return httpx.Response(200, json=body)

    serve(handler)
    assert main.run(["operator", "rewrap", "--batch", "2"]) == 0
    assert remaining == []
    assert "keyring version 2" in capsys.readouterr().err


def test_list_never_asks_for_values(
    serve: Callable[[Handler], None], capsys: pytest.CaptureFixture[str]
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.params["values"] == "false"
        return httpx.Response(200, json={"secrets": [{"path": "a/B", "version": 2}]})

    serve(handler)
    assert main.run(["secret", "list", "a/", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [
        {"path": "a/B", "version": 2, "state": "active", "updated_at": None}
    ]


def test_key_suspend_and_resume_call_their_routes_and_map_conflicts_to_exit_4(
    serve: Callable[[Handler], None], capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[tuple[str, str, bytes]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, request.content))
        if request.url.path.endswith(":resume"):
            problem = {"type": "urn:keysafe:problem:conflict", "title": "Conflict"}
            detail = "key key_1 is not suspended"
            return httpx.Response(409, json={**problem, "status": 409, "detail": detail})
        return httpx.Response(200, json={"id": "key_1", "suspended": True})

    serve(handler)
    assert main.run(["key", "suspend", "key_1", "--reason", "odd use"]) == 0
    assert "keysafe key resume key_1" in capsys.readouterr().err
    assert main.run(["key", "resume", "key_1"]) == 4
    assert capsys.readouterr().err == "keysafe: key key_1 is not suspended\n"
    assert [(m, p) for m, p, _ in seen] == [
        ("POST", "/api/v1/keys/key_1:suspend"),
        ("POST", "/api/v1/keys/key_1:resume"),
    ]
    assert json.loads(seen[0][2]) == {"reason": "odd use"}


def test_config_file_supplies_the_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for var in ("KEYSAFE_ADDR", "KEYSAFE_TOKEN", "KEYSAFE_CACERT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KEYSAFE_HOME", str(tmp_path))
    config = tmp_path / "keysafe.toml"
    config.write_text('addr = "http://127.0.0.1:9"\n')
    assert main.run(["--config", str(config), "secret", "get", "a/b"]) == 7
    assert "http://127.0.0.1:9" in capsys.readouterr().err


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    from keysafe import __version__

    assert main.run(["--version"]) == 0
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == (f"keysafe {__version__}\n", "")


def test_rotate_output_has_no_raw_none(
    serve: Callable[[Handler], None], capsys: pytest.CaptureFixture[str]
) -> None:
    run = {"id": "run_1", "previous_version": None, "new_version": 1, "outcome": "ok"}
    serve(lambda _r: httpx.Response(200, json=run))
    assert main.run(["rotate", "app/KEY"]) == 0
    err = capsys.readouterr().err
    assert "None" not in err
    assert "previous -" in err
