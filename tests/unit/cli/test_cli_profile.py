"""The profile file: permissions, quoting, and which values are taken from it."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from keysafe.cli.profile import read_profile, write_profile
from keysafe.client._config import resolve


def test_profile_is_written_0600_in_a_0700_dir(tmp_path: Path) -> None:
    path = tmp_path / "home" / "profile.toml"
    write_profile(path, {"addr": "https://127.0.0.1:8200", "token": "ks_root_x"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_rewrite_tightens_loose_permissions(tmp_path: Path) -> None:
    path = tmp_path / "profile.toml"
    path.write_text('addr = "x"\n')
    path.chmod(0o644)
    write_profile(path, {"addr": "y"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_profile(path) == {"addr": "y"}


def test_values_round_trip_with_awkward_characters(tmp_path: Path) -> None:
    path = tmp_path / "profile.toml"
    values = {"addr": "https://h:1", "token": 'a"b\\c\nd', "cacert": "/tmp/é ✓/ca.pem"}
    write_profile(path, {**values, "skipped": None})
    assert read_profile(path) == values


def test_missing_profile_is_empty(tmp_path: Path) -> None:
    assert read_profile(tmp_path / "nope.toml") == {}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("KEYSAFE_ADDR", "KEYSAFE_TOKEN", "KEYSAFE_CACERT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KEYSAFE_HOME", str(tmp_path))
    write_profile(
        tmp_path / "profile.toml",
        {"addr": "https://127.0.0.1:8200", "token": "ks_root_p", "cacert": "/p/ca.pem"},
    )
    return tmp_path


def test_profile_fills_missing_values(home: Path) -> None:
    conn = resolve()
    assert conn.addr == "https://127.0.0.1:8200"
    assert conn.token == "ks_root_p"
    assert conn.cacert == Path("/p/ca.pem")


def test_env_overrides_each_value(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYSAFE_TOKEN", "ks_tok_env")
    conn = resolve()
    assert conn.token == "ks_tok_env"
    assert conn.addr == "https://127.0.0.1:8200"


def test_profile_token_never_goes_to_another_server(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYSAFE_ADDR", "http://elsewhere:8200")
    conn = resolve()
    assert conn.addr == "http://elsewhere:8200"
    assert conn.token is None
    assert conn.cacert is None


def test_repr_hides_the_token(home: Path) -> None:
    assert "ks_root_p" not in repr(resolve())
