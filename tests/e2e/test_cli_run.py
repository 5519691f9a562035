"""``keysafe run`` and ``keysafe export`` against the session vault."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
from pathlib import Path
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


def test_invalid_env_name_is_skipped_with_a_warning_unless_strict(folders: Vault) -> None:
    assert folders.run("secret", "set", "e2e/badname/dev/GOOD", stdin="g").returncode == 0
    result = folders.run("export", "--path", "e2e/badname/dev", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"GOOD": "g"}
    assert result.stderr.count("not-an-env") == 1
    assert "warning" in result.stderr
    code = "import os; print(os.environ['GOOD'])"
    ran = folders.run("run", "--path", "e2e/badname/dev", "--", *py(code))
    assert (ran.returncode, ran.stdout) == (0, "g\n"), ran.stderr
    assert "e2e/badname/dev/not-an-env" in ran.stderr
    for command in (["export"], ["run"]):
        tail = ["--", *py(code)] if command == ["run"] else []
        strict = folders.run(*command, "--path", "e2e/badname/dev", "--strict", *tail)
        assert strict.returncode == 2
        assert "not-an-env" in strict.stderr
        assert strict.stdout == ""


def test_run_with_a_path_holding_no_secret_is_exit_3(folders: Vault, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    code = f"open({str(marker)!r}, 'w').close()"
    typo = folders.run("run", "--path", "e2e/app/dve", "--", *py(code))
    assert typo.returncode == 3
    assert "e2e/app/dve" in typo.stderr
    assert "--allow-empty" in typo.stderr
    assert not marker.exists()
    # One empty folder among good ones is still a typo.
    mixed = folders.run("run", "-p", "e2e/app/dev", "-p", "e2e/nope/dev", "--", *py(code))
    assert mixed.returncode == 3
    assert not marker.exists()
    allowed = folders.run("run", "--path", "e2e/app/dve", "--allow-empty", "--", *py(code))
    assert allowed.returncode == 0, allowed.stderr
    assert marker.exists()


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


# --- names that change how programs start (issue 11 item 6) ----------------------------------

UNSAFE = ("BASH_ENV", "LD_PRELOAD", "PYTHONSTARTUP", "KEYSAFE_TOKEN", "KEYSAFE_ADDR")


@pytest.fixture(scope="module")
def unsafe(vault: Vault, tmp_path_factory: pytest.TempPathFactory) -> Vault:
    """One folder per refused name (with an ordinary secret beside it); BASH_ENV points
    at a script that would leave a mark if any shell sourced it."""
    hook = tmp_path_factory.mktemp("hook") / "hook.sh"
    hook.write_text(f"echo sourced >> {hook}.ran\n")
    for name in UNSAFE:
        value = str(hook) if name == "BASH_ENV" else "https://attacker.invalid"
        for path, secret in {
            f"e2e/unsafe/{name}/{name}": value,
            f"e2e/unsafe/{name}/OK": "x",
        }.items():
            result = vault.run("secret", "set", path, stdin=secret)
            assert result.returncode == 0, result.stderr
    return vault


def marker_code(marker: Path) -> list[str]:
    return py(f"open({str(marker)!r}, 'w').write('ran')")


@pytest.mark.parametrize("name", UNSAFE)
def test_run_refuses_a_secret_that_changes_how_programs_start(
    unsafe: Vault, name: str, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    result = unsafe.run("run", "--path", f"e2e/unsafe/{name}", "--", *marker_code(marker))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr  # one line
    assert result.stderr.startswith("keysafe: ")
    assert f"e2e/unsafe/{name}/{name}" in result.stderr
    assert f"--allow-env {name}" in result.stderr
    assert not marker.exists()  # the program never started


def test_run_allows_a_refused_name_when_asked(unsafe: Vault) -> None:
    code = "import os; print(os.environ['PYTHONSTARTUP'], os.environ['OK'])"
    args = ("run", "--path", "e2e/unsafe/PYTHONSTARTUP", "--allow-env", "PYTHONSTARTUP")
    result = unsafe.run(*args, "--", *py(code))
    assert (result.returncode, result.stdout) == (0, "https://attacker.invalid x\n"), result.stderr


def test_allowing_one_name_does_not_allow_another(unsafe: Vault) -> None:
    both = ("--path", "e2e/unsafe/BASH_ENV", "--path", "e2e/unsafe/LD_PRELOAD", "--prefix")
    # With --prefix the names are E2E_UNSAFE_..., ordinary data: nothing to refuse.
    assert unsafe.run("run", *both, "--", *py("pass")).returncode == 0
    result = unsafe.run(
        "run", "--path", "e2e/unsafe/BASH_ENV", "--allow-env", "LD_PRELOAD", "--", "true"
    )
    assert result.returncode == 2
    assert "BASH_ENV" in result.stderr


def test_bash_env_from_a_secret_is_never_sourced(unsafe: Vault, tmp_path: Path) -> None:
    listed = unsafe.run("secret", "get", "e2e/unsafe/BASH_ENV/BASH_ENV")
    hook_ran = Path(listed.stdout.strip() + ".ran")
    result = unsafe.run("run", "--path", "e2e/unsafe/BASH_ENV", "--", "bash", "-c", "true")
    assert result.returncode == 2
    assert not hook_ran.exists()
    # Allowed by name, it does what BASH_ENV does: proof that the refusal mattered.
    args = ("run", "--path", "e2e/unsafe/BASH_ENV", "--allow-env", "BASH_ENV")
    assert unsafe.run(*args, "--", "bash", "-c", "true").returncode == 0
    assert hook_ran.read_text() == "sourced\n"


@pytest.mark.parametrize("fmt", ["shell", "dotenv", "json"])
def test_export_refuses_the_same_names(unsafe: Vault, fmt: str) -> None:
    args = ("export", "--path", "e2e/unsafe/BASH_ENV", "--format", fmt)
    refused = unsafe.run(*args)
    assert refused.returncode == 2
    assert "e2e/unsafe/BASH_ENV/BASH_ENV" in refused.stderr
    assert refused.stdout == ""
    allowed = unsafe.run(*args, "--allow-env", "BASH_ENV")
    assert allowed.returncode == 0, allowed.stderr
    assert "BASH_ENV" in allowed.stdout


def profile_token(vault: Vault) -> str:
    import tomllib

    return str(tomllib.loads((vault.home / "profile.toml").read_text())["token"])


SHOW = py(
    "import json, os; print(json.dumps({k: os.environ.get(k) for k in "
    "('KEYSAFE_TOKEN', 'KEYSAFE_ADDR', 'KEYSAFE_UNSEAL_KEY', 'DB_PASSWORD')}))"
)


def test_child_does_not_inherit_the_callers_token(folders: Vault) -> None:
    token = profile_token(folders)
    env = {"KEYSAFE_TOKEN": token, "KEYSAFE_UNSEAL_KEY": "ksu1_not-for-children"}
    result = folders.run("run", "--path", "e2e/app/dev", "--", *SHOW, env=env)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["DB_PASSWORD"] == "hunter2-but-long"  # the token did its work for keysafe
    assert seen["KEYSAFE_TOKEN"] is None
    assert seen["KEYSAFE_UNSEAL_KEY"] is None


@pytest.mark.parametrize("from_env", [True, False])
def test_pass_token_hands_over_the_token_and_its_server(folders: Vault, from_env: bool) -> None:
    token = profile_token(folders)
    env = {"KEYSAFE_TOKEN": token, "KEYSAFE_UNSEAL_KEY": "ksu1_x"} if from_env else {}
    args = ("run", "--path", "e2e/app/dev", "--pass-token")
    result = folders.run(*args, "--", *SHOW, env=env)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["KEYSAFE_TOKEN"] == token
    assert seen["KEYSAFE_ADDR"] == folders.addr
    assert seen["KEYSAFE_UNSEAL_KEY"] is None  # never passed on


def test_restart_on_change_refuses_a_new_unsafe_name(unsafe: Vault, tmp_path: Path) -> None:
    folder = "e2e/unsafe/watched"
    assert unsafe.run("secret", "set", f"{folder}/OK", stdin="v1").returncode == 0
    log = tmp_path / "starts"
    code = f"import time; open({str(log)!r}, 'a').write('start\\n'); print('ready', flush=True)\n"
    code += "time.sleep(60)\n"
    proc = unsafe.popen(
        "run", "--path", folder, "--restart-on-change", "--poll", "1s", "--", *py(code)
    )
    try:
        assert proc.stdout is not None
        assert proc.stderr is not None
        ready = proc.stdout.readline().strip()
        assert ready == "ready", proc.stderr.read() if proc.poll() is not None else ""
        assert unsafe.run("secret", "set", f"{folder}/LD_PRELOAD", stdin="/x.so").returncode == 0
        line = proc.stderr.readline()
        assert f"{folder}/LD_PRELOAD" in line
        assert "--allow-env LD_PRELOAD" in line
        assert proc.poll() is None  # still running on the values it had
        assert log.read_text() == "start\n"  # and never restarted with the new ones
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
