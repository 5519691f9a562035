"""People through the real CLI against ``keysafe up``: create, login with password and
TOTP, a command with the session, step-up, logout."""

from __future__ import annotations

import subprocess
import time
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING

import pyotp
from tests.e2e.conftest import KEYSAFE, Cli, clean_env

from keysafe.cli.profile import read_profile, write_profile

if TYPE_CHECKING:
    from tests.e2e.conftest import Vault

PASSWORD = "e2e people passphrase"
POLICY = '[[rule]]\npath = "e2e/people/*"\ncapabilities = ["read"]\n'


def _laptop(vault: Vault, home: Path) -> Cli:
    """Another person's KEYSAFE_HOME: the vault's address and CA, no token."""
    profile = read_profile(vault.home / "profile.toml")
    write_profile(home / "profile.toml", {"addr": profile["addr"], "cacert": profile["cacert"]})
    return Cli(home=home, env=clean_env(KEYSAFE_HOME=str(home)))


def _enrol(person: Cli) -> tuple[pyotp.TOTP, list[str]]:
    """``keysafe mfa enroll`` driven like a person: password, read the URI, type a code."""
    proc = subprocess.Popen(
        [*KEYSAFE, "mfa", "enroll", "--password-stdin"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=person.env,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write(PASSWORD + "\n")
    proc.stdin.flush()
    qr_lines = 0
    while True:
        line = proc.stdout.readline()
        assert line, proc.communicate(timeout=30)
        if line.startswith("otpauth://"):
            break
        qr_lines += 1
    assert qr_lines > 10  # the QR code came first
    secret = urllib.parse.parse_qs(urllib.parse.urlparse(line.strip()).query)["secret"][0]
    device = pyotp.TOTP(secret)
    out, err = proc.communicate(device.now() + "\n", timeout=60)
    assert proc.returncode == 0, err
    codes = out.split()
    assert len(codes) == 10
    assert "Recovery codes" in err
    return device, codes


def _fresh_code(device: pyotp.TOTP) -> str:
    # The code of the step after the last one used (the server refuses replays).
    return device.at(time.time() + 30)


def test_person_logs_in_with_password_and_totp(vault: Vault, tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_text(POLICY)
    assert vault.run("policy", "write", "people-read", str(tmp_path / "p.toml")).returncode == 0
    assert vault.run("role", "write", "people", "--policy", "people-read").returncode == 0
    assert vault.run("secret", "set", "e2e/people/DB", stdin="db-value").returncode == 0
    made = vault.run(
        "user", "create", "alice", "--role", "people", "--password-stdin", stdin=PASSWORD
    )
    assert made.returncode == 0, made.stderr
    admin = vault.run(
        "user", "create", "olga", "--role", "admin", "--password-stdin", stdin=PASSWORD
    )
    assert admin.returncode == 0, admin.stderr
    # The password never goes on argv: there is no option for it.
    assert vault.run("user", "create", "x", "--password", PASSWORD).returncode == 2

    alice = _laptop(vault, tmp_path / "alice")
    wrong = alice.run("login", "alice", "--password-stdin", stdin="not the password\n")
    unknown = alice.run("login", "nobody", "--password-stdin", stdin="not the password\n")
    assert wrong.returncode == unknown.returncode == 6
    assert wrong.stderr == unknown.stderr

    first = alice.run("login", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    assert first.returncode == 0, first.stderr
    assert read_profile(alice.home / "profile.toml")["token"].startswith("ks_sess_")
    device, codes = _enrol(alice)
    assert alice.run("logout").returncode == 0

    no_code = alice.run("login", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    assert no_code.returncode == 6
    code = _fresh_code(device)
    ok = alice.run("login", "alice", "--password-stdin", "--code", code, stdin=PASSWORD + "\n")
    assert ok.returncode == 0, ok.stderr
    assert "with a second factor" in ok.stderr
    replay = alice.run("login", "alice", "--password-stdin", "--code", code, stdin=PASSWORD + "\n")
    assert replay.returncode == 6

    read = alice.run("secret", "get", "e2e/people/DB")
    assert (read.returncode, read.stdout) == (0, "db-value\n"), read.stderr
    assert alice.run("user", "list").returncode == 1  # no admin role: denied
    assert alice.run("mfa", "verify", "--code", codes[0]).returncode == 0  # a recovery code
    assert alice.run("mfa", "verify", "--code", codes[0]).returncode == 6  # ... works once

    listed = vault.run("user", "list", "--json")
    assert '"name": "alice"' in listed.stdout
    assert '"mfa": true' in listed.stdout
    assert alice.run("logout").returncode == 0
    assert "token" not in read_profile(alice.home / "profile.toml")
    assert alice.run("secret", "get", "e2e/people/DB").returncode == 6  # no credential now

    # An admin person (built-in role) administers people from their own session.
    olga = _laptop(vault, tmp_path / "olga")
    assert olga.run("login", "olga", "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    shown = olga.run("user", "show", "alice", "--json")
    assert shown.returncode == 0
    assert '"roles": [\n    "people"\n  ]' in shown.stdout
    assert olga.run("user", "disable", "alice").returncode == 0
    refused = alice.run(
        "login", "alice", "--password-stdin", "--code", _fresh_code(device), stdin=PASSWORD + "\n"
    )
    assert refused.returncode == 6


def test_login_to_another_server_never_mixes_profiles(vault: Vault, tmp_path: Path) -> None:
    made = vault.run("user", "create", "pat", "--password-stdin", stdin=PASSWORD)
    assert made.returncode == 0, made.stderr
    ca = read_profile(vault.home / "profile.toml")["cacert"]
    home = tmp_path / "pat"
    other = {"addr": "https://127.0.0.1:9", "token": "ks_root_of_another_vault", "cacert": ca}
    write_profile(home / "profile.toml", other)
    pat = Cli(home=home, env=clean_env(KEYSAFE_HOME=str(home)))
    done = pat.run(
        "--addr", vault.addr, "--cacert", ca, "login", "pat", "--password-stdin", stdin=PASSWORD
    )
    assert done.returncode == 0, done.stderr
    profile = read_profile(home / "profile.toml")
    assert profile["addr"] == vault.addr
    assert profile["token"].startswith("ks_sess_")
    assert "ks_root_of_another_vault" not in (home / "profile.toml").read_text()
    assert pat.run("logout").returncode == 0
    assert "token" not in read_profile(home / "profile.toml")
