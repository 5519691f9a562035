"""Helpers for the auto-unseal tests: a throwaway SoftHSM2 token, the CLI as a process."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from server_proc import KEYSAFE_CLI, ServerProc

PIN = "4711-unseal"
TOKEN_LABEL = "keysafe-test"
_LIBRARIES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
)


@dataclass
class SoftHsm:
    """One SoftHSM2 configuration with one initialised token, in a temp folder."""

    conf: Path
    tokens: Path
    library: str

    def env(self, pin: str = PIN) -> dict[str, str]:
        return {
            "SOFTHSM2_CONF": str(self.conf),
            "KEYSAFE_SEAL": "pkcs11",
            "KEYSAFE_PKCS11_LIBRARY": self.library,
            "KEYSAFE_PKCS11_TOKEN_LABEL": TOKEN_LABEL,
            "KEYSAFE_PKCS11_PIN": pin,
            "KEYSAFE_PKCS11_KEY_LABEL": "root-wrap",
            "KEYSAFE_PKCS11_GENERATE_KEY": "true",
        }

    def remove_token(self) -> Path:
        """Take the token away (as pulling it out would); returns where it went."""
        aside = self.tokens.with_name("tokens-removed")
        shutil.move(self.tokens, aside)
        self.tokens.mkdir()
        return aside

    def put_back(self, aside: Path) -> None:
        shutil.rmtree(self.tokens)
        shutil.move(aside, self.tokens)


def softhsm(tmp: Path) -> SoftHsm:
    """A SoftHSM2 token under ``tmp``; skips without softhsm2 (never under CI=true)."""
    util = shutil.which("softhsm2-util")
    library = next((lib for lib in _LIBRARIES if Path(lib).is_file()), None)
    if util is None or library is None:
        if os.environ.get("CI") == "true":
            pytest.fail("softhsm2 is not installed (.ci/run installs it)")
        pytest.skip("softhsm2 is not installed (apt-get install softhsm2)")
    tokens = tmp / "hsm" / "tokens"
    tokens.mkdir(parents=True)
    conf = tmp / "hsm" / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    subprocess.run(
        [util, "--init-token", "--free", "--label", TOKEN_LABEL, "--pin", PIN, "--so-pin", "8642"],
        env={**os.environ, "SOFTHSM2_CONF": str(conf)},
        check=True,
        capture_output=True,
    )
    return SoftHsm(conf, tokens, library)


def cli(
    server: ServerProc, *args: str, stdin: str = "", token: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``keysafe ARGS`` against ``server`` as a process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYSAFE_")}
    env.update(
        KEYSAFE_HOME=str(server.vault.home.parent / "cli-home"),
        KEYSAFE_ADDR=server.base_url,
        KEYSAFE_CACERT=str(server.vault.tls.ca_cert),
    )
    if token:
        env["KEYSAFE_TOKEN"] = token
    return subprocess.run(
        [KEYSAFE_CLI, *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def shares_in(output: str, kind: str) -> list[str]:
    """The shares a command printed as ``<kind> share N: words``."""
    prefix = f"{kind} share "
    return [
        line.split(": ", 1)[1].strip() for line in output.splitlines() if line.startswith(prefix)
    ]


def root_token_in(output: str) -> str:
    return next(line.split(": ", 1)[1] for line in output.splitlines() if "Root token:" in line)
