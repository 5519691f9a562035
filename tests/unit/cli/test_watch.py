"""The restart-on-change loop with scripted version checks and a real child process."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from keysafe.cli.watch import WatchOptions, parse_signal, run_watched
from keysafe.errors import ConnectionFailed, InvalidInput

# Writes its TOKEN to the file, then exits 5 once the file says "stop".
CHILD = """
import os, sys, time
log = sys.argv[1]
with open(log, "a") as fh:
    fh.write(os.environ["TOKEN"] + "\\n")
for _ in range(200):
    time.sleep(0.05)
    if open(log).read().endswith("stop\\n"):
        sys.exit(5)
sys.exit(9)
"""


class Script:
    """Versions and values that change on the Nth check, with failures in between."""

    def __init__(self, log: Path, steps: list[object]) -> None:
        self.log = log
        self.steps = steps
        self.version = 1
        self.value = "one"

    def versions(self) -> dict[str, int]:
        step = self.steps.pop(0) if self.steps else "stop"
        if step == "fail":
            raise ConnectionFailed("cannot connect to https://vault.test: connection refused")
        if step == "stop":
            with self.log.open("a") as fh:
                fh.write("stop\n")
        elif isinstance(step, tuple):
            self.version, self.value = step
        return {"app/TOKEN": self.version}

    def env(self) -> dict[str, str]:
        return {"TOKEN": self.value}


def run(tmp_path: Path, steps: list[object]) -> tuple[int, list[str], list[str]]:
    log = tmp_path / "log"
    # The first check is the initial one; the quiet checks after the script leave a
    # (re)started child time to start and write its line before "stop" is written.
    script = Script(log, [None, *steps, *[None] * 10])
    said: list[str] = []
    code = run_watched(
        [sys.executable, "-c", CHILD, str(log)],
        {"PATH": "/usr/bin:/bin"},
        script.versions,
        script.env,
        WatchOptions(poll=0.2, stop_timeout=5),
        said.append,
    )
    return code, log.read_text().splitlines(), said


def test_a_change_restarts_and_the_exit_status_is_the_childs(tmp_path: Path) -> None:
    code, log, said = run(tmp_path, [None, (2, "two")])
    assert code == 5
    assert log == ["one", "two", "stop"]
    assert said == ["keysafe: secrets changed; restarting the program"]


def test_a_new_version_with_the_same_values_restarts_nothing(tmp_path: Path) -> None:
    code, log, _ = run(tmp_path, [(2, "one")])
    assert (code, log) == (5, ["one", "stop"])


def test_failed_checks_are_reported_once_and_the_child_keeps_running(tmp_path: Path) -> None:
    code, log, said = run(tmp_path, ["fail", "fail", "fail", (2, "two")])
    assert code == 5
    assert log == ["one", "two", "stop"]
    assert said == [
        "keysafe: cannot check the secrets for changes: "
        "cannot connect to https://vault.test: connection refused",
        "keysafe: checking the secrets for changes again",
        "keysafe: secrets changed; restarting the program",
    ]


@pytest.mark.parametrize(
    ("name", "number"), [("HUP", signal.SIGHUP), ("sigusr1", signal.SIGUSR1), ("TERM", 15)]
)
def test_parse_signal(name: str, number: int) -> None:
    assert parse_signal(name) == number


@pytest.mark.parametrize("name", ["KILL", "STOP", "NOPE", ""])
def test_parse_signal_refuses(name: str) -> None:
    with pytest.raises(InvalidInput):
        parse_signal(name)
