"""``keysafe run --restart-on-change`` against the session vault, with real processes.

The child programs record what they see (their pid, the secret's value, the signals they
get) in a file; the tests change the secret with the CLI and read the file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.e2e.conftest import Vault

# The child: "start <pid> <TOKEN>" on start, "term <pid>" on SIGTERM (then exits 0),
# "hup <pid>" on SIGHUP; IGNORE_TERM=1 makes it ignore SIGTERM.
CHILD = """
import os, signal, sys, time
log = sys.argv[1]
def note(text):
    with open(log, "a") as fh:
        fh.write(text + "\\n")
def term(*_):
    note(f"term {os.getpid()}")
    sys.exit(0)
signal.signal(signal.SIGTERM, signal.SIG_IGN if os.environ.get("IGNORE_TERM") else term)
signal.signal(signal.SIGHUP, lambda *_: note(f"hup {os.getpid()}"))
note(f"start {os.getpid()} {os.environ.get('TOKEN')}")
while True:
    time.sleep(0.1)
"""


def folder(vault: Vault, **values: str) -> str:
    name = f"e2e/restart{secrets.token_hex(3)}/dev"
    for key, value in values.items():
        set_secret(vault, f"{name}/{key}", value)
    return name


def set_secret(vault: Vault, path: str, value: str) -> None:
    result = vault.run("secret", "set", path, stdin=value)
    assert result.returncode == 0, result.stderr


def lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def wait_for(log: Path, predicate: str, timeout: float = 40) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = lines(log)
        if any(line.startswith(predicate) for line in seen):
            return seen
        time.sleep(0.1)
    pytest.fail(f"no line starting {predicate!r} in {lines(log)}")


def start(vault: Vault, path: str, log: Path, *flags: str) -> subprocess.Popen[str]:
    return vault.popen(
        "run", "--path", path, "--restart-on-change", "--poll", "1s", *flags,
        "--", sys.executable, "-c", CHILD, str(log),
    )  # fmt: skip


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return proc.returncode, err


def test_a_changed_secret_restarts_the_child_with_the_new_value(
    vault: Vault, tmp_path: Path
) -> None:
    path = folder(vault, TOKEN="one")
    log = tmp_path / "child.log"
    proc = start(vault, path, log)
    try:
        first = wait_for(log, "start")
        assert first[0].endswith(" one")
        pid = first[0].split()[1]
        set_secret(vault, f"{path}/TOKEN", "two")
        seen = wait_for_value(log, "two")
    finally:
        code, err = finish(proc)
    restarted = next(i for i, line in enumerate(seen) if line.endswith(" two"))
    assert f"term {pid}" in seen[:restarted], "the old child is stopped gracefully first"
    assert code == 0, err  # the new child exits 0 on the SIGTERM keysafe forwards
    assert "restarting" in err
    assert "two" not in err  # never a value on stderr


def wait_for_value(log: Path, value: str, timeout: float = 40) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = lines(log)
        if any(line.startswith("start") and line.endswith(f" {value}") for line in seen):
            return seen
        time.sleep(0.1)
    pytest.fail(f"the child never started with the new value: {lines(log)}")


def test_signal_mode_signals_instead_of_restarting(vault: Vault, tmp_path: Path) -> None:
    path = folder(vault, TOKEN="one")
    other = folder(vault, TOKEN="elsewhere")
    log = tmp_path / "child.log"
    proc = start(vault, path, log, "--signal", "HUP")
    try:
        wait_for(log, "start")
        set_secret(vault, f"{other}/TOKEN", "changed")  # another folder: no signal
        set_secret(vault, f"{path}/TOKEN", "two")
        wait_for(log, "hup")
        time.sleep(1.5)  # a poll or two more: still one child, one signal
    finally:
        code, err = finish(proc)
    seen = lines(log)
    assert [line.split()[0] for line in seen] == ["start", "hup", "term"]
    assert len({line.split()[1] for line in seen}) == 1
    assert "SIGHUP" in err
    assert code == 0


def test_a_child_ignoring_sigterm_is_killed_and_restarted(vault: Vault, tmp_path: Path) -> None:
    path = folder(vault, TOKEN="one")
    log = tmp_path / "child.log"
    stuck = {"IGNORE_TERM": "1"}
    proc = vault.popen(
        "run", "--path", path, "--restart-on-change", "--poll", "1s", "--stop-timeout", "1s",
        "--", sys.executable, "-c", CHILD, str(log), env=stuck,
    )  # fmt: skip
    try:
        first = wait_for(log, "start")
        set_secret(vault, f"{path}/TOKEN", "two")
        seen = wait_for_value(log, "two")
        assert not any(line.startswith("term") for line in seen)
        old_pid = int(first[0].split()[1])
        with pytest.raises(ProcessLookupError):
            os.kill(old_pid, 0)  # SIGKILLed and reaped before the new child started
    finally:
        # The new child ignores SIGTERM too: end keysafe, then the child (which holds
        # keysafe's output pipes open), then collect the output.
        proc.kill()
        for line in lines(log):
            if line.startswith("start"):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(line.split()[1]), signal.SIGKILL)
        proc.communicate(timeout=30)


def test_the_exit_status_is_the_childs_when_it_exits_on_its_own(vault: Vault) -> None:
    path = folder(vault, TOKEN="one")
    result = vault.run(
        "run", "--path", path, "--restart-on-change",
        "--", sys.executable, "-c", "import os; raise SystemExit(len(os.environ['TOKEN']) + 4)",
    )  # fmt: skip
    assert result.returncode == 7, result.stderr


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (("--signal", "HUP"), "only apply with --restart-on-change"),
        (("--poll", "2s"), "only apply with --restart-on-change"),
        (("--restart-on-change", "--signal", "KILL"), "SIGKILL cannot be caught"),
        (("--restart-on-change", "--signal", "NOPE"), "unknown signal"),
        (("--restart-on-change", "--poll", "soon"), "invalid duration"),
    ],
)
def test_bad_flags_are_usage_errors(vault: Vault, flags: tuple[str, ...], expected: str) -> None:
    path = folder(vault, TOKEN="one")
    result = vault.run("run", "--path", path, *flags, "--", sys.executable, "-c", "pass")
    assert result.returncode == 2
    assert expected in result.stderr
    assert result.stderr.startswith("keysafe: ")
