"""The command rotator against real scripts: stdin only, a clean environment, timeouts,
and failures that never carry the value."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from keysafe.errors import InvalidInput, RotationFailed
from keysafe.rotation.rotators.base import RotationContext
from keysafe.rotation.rotators.command import CommandRotator


def _script(tmp: Path, body: str) -> Path:
    script = tmp / "s.sh"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def _ctx(script: Path, **extra: str) -> RotationContext:
    def no_reads(path: str) -> str:
        raise AssertionError(path)

    options = {"command": f"{script} --flag", **extra}
    return RotationContext(
        path="a/DB",
        options=options,
        current="old-value",
        read_secret=no_reads,
        extra={"run_id": "rot_1", "step": "apply"},
    )


def test_value_on_stdin_and_a_clean_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYSAFE_UNSEAL_KEY", "ksu1_must-not-leak")
    out = tmp_path / "out"
    script = _script(tmp_path, f'cat > {out}.stdin\necho "$@" > {out}.argv\nenv > {out}.env\n')
    CommandRotator().apply(_ctx(script), "new-value")
    assert (tmp_path / "out.stdin").read_text() == "new-value"
    assert (tmp_path / "out.argv").read_text().strip() == "--flag"
    env = dict(
        line.split("=", 1)
        for line in (tmp_path / "out.env").read_text().splitlines()
        if "=" in line
    )
    assert env["KEYSAFE_ROTATION_STEP"] == "apply"
    assert env["KEYSAFE_ROTATION_PATH"] == "a/DB"
    assert env["KEYSAFE_ROTATION_ID"] == "rot_1"
    assert "KEYSAFE_UNSEAL_KEY" not in env
    assert "new-value" not in (tmp_path / "out.env").read_text()


def test_each_step_says_which(tmp_path: Path) -> None:
    log = tmp_path / "log"
    script = _script(tmp_path, f'echo "$KEYSAFE_ROTATION_STEP $(cat)" >> {log}\n')
    rotator = CommandRotator()
    ctx = _ctx(script)
    rotator.apply(ctx, "n")
    rotator.verify(ctx, "n")
    rotator.retire(ctx, "o")
    assert log.read_text().splitlines() == ["apply n", "verify n", "retire o"]


def test_failure_carries_the_stderr_tail_without_values(tmp_path: Path) -> None:
    script = _script(
        tmp_path, 'v=$(cat)\necho "cannot set password $v (old was old-value)" >&2\nexit 3\n'
    )
    with pytest.raises(RotationFailed) as info:
        CommandRotator().apply(_ctx(script), "new-value")
    detail = info.value.detail
    assert "status 3" in detail
    assert "cannot set password [redacted]" in detail
    assert "new-value" not in detail
    assert "old-value" not in detail


def test_timeout_kills_the_script_and_its_children(tmp_path: Path) -> None:
    marker = tmp_path / "child-alive"
    script = _script(tmp_path, f"(sleep 3; touch {marker}) &\nsleep 30\n")
    started = time.monotonic()
    with pytest.raises(RotationFailed, match="timeout"):
        CommandRotator().apply(_ctx(script, timeout="1"), "v")
    assert time.monotonic() - started < 5
    time.sleep(3)
    assert not marker.exists()


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"command": "relative/script"},
        {"command": "/nonexistent/script"},
        {"command": "/bin/true", "timeout": "0"},
        {"command": "/bin/true", "timeout": "301"},
        {"command": "/bin/true 'unbalanced"},
        {"command": "/bin/true", "url": "x"},
    ],
)
def test_bad_options(options: dict[str, str]) -> None:
    with pytest.raises(InvalidInput):
        CommandRotator().check_options(options)


def test_a_file_that_is_not_executable(tmp_path: Path) -> None:
    plain = tmp_path / "plain.sh"
    plain.write_text("#!/bin/sh\n")
    plain.chmod(0o644)
    with pytest.raises(InvalidInput, match="not an executable"):
        CommandRotator().check_options({"command": str(plain)})


def test_good_options() -> None:
    CommandRotator().check_options({"command": "/bin/true --x", "timeout": "5", "length": "40"})
    assert os.access("/bin/true", os.X_OK)
