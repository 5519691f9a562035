"""``keysafe run`` and ``keysafe export`` against the session vault."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
from dotenv import dotenv_values

if TYPE_CHECKING:
    from tests.e2e.conftest import Vault

AWKWARD = 'it\'s $HOME `id` \\ "q"\nsecond line é'


@pytest.fixture(scope="module")
def folders(vault: Vault) -> Vault:
    for path, value in {
        "e2e/app/dev/DB_PASSWORD": "hunter2-but-long",
        "e2e/app/dev/AWKWARD": AWKWARD,
        "e2e/app/dev/nested/IGNORED": "not direct",
        "e2e/other/dev/DB_PASSWORD": "other-password",
        "e2e/badname/dev/not-an-env": "x",
    }.items():
        result = vault.run("secret", "set", path, stdin=value)
        assert result.returncode == 0, result.stderr
    return vault


def py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_run_injects_the_folder(folders: Vault) -> None:
    code = "import os, json; print(json.dumps({k: os.environ.get(k) for k in "
    code += "('DB_PASSWORD', 'AWKWARD', 'IGNORED')}))"
    result = folders.run("run", "--path", "e2e/app/dev", "--", *py(code))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "DB_PASSWORD": "hunter2-but-long",
        "AWKWARD": AWKWARD,
        "IGNORED": None,
    }


def test_run_passes_the_exit_code_through(folders: Vault) -> None:
    result = folders.run("run", "--path", "e2e/app/dev", "--", *py("raise SystemExit(7)"))
    assert result.returncode == 7


def test_run_missing_command_is_127(folders: Vault) -> None:
    result = folders.run("run", "--path", "e2e/app/dev", "--", "no-such-program-xyz")
    assert result.returncode == 127
    assert result.stderr.startswith("keysafe: ")


@pytest.mark.parametrize(("trap", "expected"), [(True, 42), (False, 128 + signal.SIGTERM)])
def test_run_forwards_sigterm(folders: Vault, trap: bool, expected: int) -> None:
    code = "import signal, sys, time\n"
    if trap:
        code += "signal.signal(signal.SIGTERM, lambda *a: sys.exit(42))\n"
    code += "print('ready', flush=True)\ntime.sleep(60)\n"
    proc = folders.popen("run", "--path", "e2e/app/dev", "--", *py(code))
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert proc.returncode == expected


def test_name_clash_is_an_error_unless_prefixed(folders: Vault) -> None:
    both = ("--path", "e2e/app/dev", "--path", "e2e/other/dev")
    code = "import os; print(os.environ['E2E_OTHER_DEV_DB_PASSWORD'])"
    clash = folders.run("run", *both, "--", *py(code))
    assert clash.returncode == 2
    assert "DB_PASSWORD" in clash.stderr
    assert "--prefix" in clash.stderr
    ok = folders.run("run", *both, "--prefix", "--", *py(code))
    assert (ok.returncode, ok.stdout) == (0, "other-password\n")


def test_invalid_env_name_is_an_error(folders: Vault) -> None:
    result = folders.run("export", "--path", "e2e/badname/dev")
    assert result.returncode == 2
    assert "not-an-env" in result.stderr


def test_export_dotenv(folders: Vault) -> None:
    result = folders.run("export", "--path", "e2e/app/dev", "--format", "dotenv")
    assert result.returncode == 0, result.stderr
    parsed = dotenv_values(stream=io.StringIO(result.stdout), interpolate=False)
    assert parsed == {"AWKWARD": AWKWARD, "DB_PASSWORD": "hunter2-but-long"}


def test_export_json(folders: Vault) -> None:
    result = folders.run("export", "--path", "e2e/app/dev", "--format", "json")
    assert json.loads(result.stdout) == {"AWKWARD": AWKWARD, "DB_PASSWORD": "hunter2-but-long"}


def test_export_shell(folders: Vault) -> None:
    result = folders.run("export", "--path", "e2e/app/dev", "--format", "shell")
    script = result.stdout + 'printf "%s" "$AWKWARD"'
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout == AWKWARD


def test_export_unknown_format_is_exit_2(folders: Vault) -> None:
    assert folders.run("export", "--path", "e2e/app/dev", "--format", "xml").returncode == 2


def test_ctrl_c_on_a_terminal_reaches_the_child_once(folders: Vault) -> None:
    """The terminal signals keysafe and the child together; keysafe must not add a second."""
    import os
    import pty
    import select
    import time

    code = (
        "import signal, sys, time\nn = [0]\n"
        "signal.signal(signal.SIGINT, lambda *a: n.__setitem__(0, n[0] + 1))\n"
        "print('ready', flush=True)\ntime.sleep(1.5)\nprint('count', n[0], flush=True)\n"
        "sys.exit(3)\n"
    )
    argv = [sys.executable, "-m", "keysafe.cli.main", "run", "--path", "e2e/app/dev", "--"]
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child process
        # The CLI under a real terminal, exactly as a user would run it.
        os.execve(sys.executable, [*argv, sys.executable, "-c", code], folders.env)  # noqa: S606
    output = b""

    def read_for(seconds: float) -> None:
        nonlocal output
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                try:
                    output += os.read(fd, 1024)
                except OSError:
                    return

    deadline = time.monotonic() + 30
    while b"ready" not in output and time.monotonic() < deadline:
        read_for(0.2)
    os.write(fd, b"\x03")
    read_for(3)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert b"count 1" in output, output
    assert os.waitstatus_to_exitcode(status) == 3
