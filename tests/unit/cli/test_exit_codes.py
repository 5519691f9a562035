"""Every failure is one ``keysafe: ...`` line on stderr and the documented exit code."""

from __future__ import annotations

from pathlib import Path

import pytest

from keysafe import errors
from keysafe.cli import fastget, main

EXPECTED = {
    errors.InvalidInput: 2,
    errors.ValueTooLarge: 2,
    errors.Unauthenticated: 6,
    errors.Forbidden: 1,
    errors.MfaRequired: 1,
    errors.NotFound: 3,
    errors.RateLimited: 9,
    errors.AccountLocked: 9,
    errors.Conflict: 4,
    errors.CasMismatch: 4,
    errors.AlreadyInitialized: 4,
    errors.Unavailable: 5,
    errors.Sealed: 5,
    errors.NotInitialized: 5,
    errors.AuditUnavailable: 5,
    errors.StorageUnavailable: 5,
    errors.IntegrityError: 8,
    errors.RotationFailed: 10,
    errors.ConnectionFailed: 7,
    errors.ServerError: 8,
}


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYSAFE_HOME", str(tmp_path))
    for var in ("KEYSAFE_ADDR", "KEYSAFE_TOKEN", "KEYSAFE_CACERT"):
        monkeypatch.delenv(var, raising=False)


def test_every_error_class_is_covered() -> None:
    assert set(EXPECTED) == set(errors.ERRORS_BY_CODE.values())


@pytest.mark.parametrize(("cls", "code"), list(EXPECTED.items()))
def test_error_maps_to_exit_code(
    cls: type[errors.KeysafeError],
    code: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def boom(_args: fastget.GetArgs) -> int:
        raise cls("something\nwent wrong")

    monkeypatch.setattr(fastget, "run", boom)
    assert main.run(["secret", "get", "a/b"]) == code
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "keysafe: something went wrong\n"


def test_usage_error_is_exit_2_on_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main.run(["secret", "rollback", "a/b"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("keysafe: ")
    assert err.count("\n") == 1


def test_unknown_command_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main.run(["frobnicate"]) == 2
    assert capsys.readouterr().err.startswith("keysafe: ")


def test_value_on_the_command_line_is_refused_without_echo(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main.run(["secret", "set", "a/b", "hunter2-value"]) == 2
    err = capsys.readouterr().err
    assert "never taken from the command line" in err
    assert "hunter2-value" not in err


def test_malformed_path_is_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KEYSAFE_ADDR", "https://127.0.0.1:9")
    assert main.run(["secret", "get", "a/../b"]) == 2
    assert "malformed secret path" in capsys.readouterr().err


def test_no_server_configured_is_exit_7(capsys: pytest.CaptureFixture[str]) -> None:
    assert main.run(["secret", "list"]) == 7
    assert "keysafe up" in capsys.readouterr().err


def test_unexpected_exception_is_one_line_exit_8(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def boom(_args: fastget.GetArgs) -> int:
        raise RuntimeError("bug")

    monkeypatch.setattr(fastget, "run", boom)
    assert main.run(["secret", "get", "a/b"]) == 8
    assert capsys.readouterr().err == "keysafe: unexpected error: RuntimeError: bug\n"


def test_help_lists_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main.run(["--help"]) == 0
    out = capsys.readouterr().out
    assert "Exit codes" in out
    assert "7 cannot reach the server" in " ".join(out.split())


def test_no_subcommand_shows_help_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main.run(["secret"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("Usage: keysafe secret")
    assert captured.out == ""
