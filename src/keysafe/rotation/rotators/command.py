"""``command``: a script of the operator's rotates the credential wherever it lives.

The script is run without a shell (``command`` is split like a shell would, no
expansion), with the value on **stdin** only (never argv or the environment, which
other local users may read in ``/proc``), and a small clean environment: the server's
own environment (which may hold the unseal key) is never passed on.

    KEYSAFE_ROTATION_STEP   apply | verify | retire   (what to do with the stdin value)
    KEYSAFE_ROTATION_PATH   the secret's path
    KEYSAFE_ROTATION_ID     the rotation run id (the same across retries of a step)
    KEYSAFE_ROTATION_ROLLBACK  "1" when ``apply`` restores the previous value

Exit 0 means done; anything else, or running past ``timeout`` seconds (default 30,
at most 300), fails the step with the tail of the script's stderr (with the values
blanked out). ``apply`` and ``retire`` must be idempotent. New values are drawn like
the ``random`` rotator's (``length``, ``alphabet``, ``format``).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
from collections.abc import Mapping

from keysafe.errors import InvalidInput, RotationFailed
from keysafe.rotation.rotators.base import RotationContext
from keysafe.rotation.rotators.random import RandomRotator, random_value

__all__ = ["CommandRotator"]

DEFAULT_TIMEOUT = 30
MAX_TIMEOUT = 300
STDERR_TAIL = 400
_OPTIONS = frozenset({"command", "timeout", "length", "alphabet", "format"})


def _argv(options: Mapping[str, str]) -> list[str]:
    raw = options.get("command", "").strip()
    if not raw:
        raise InvalidInput("the command rotator needs --command (an executable and arguments)")
    try:
        argv = shlex.split(raw)
    except ValueError as exc:
        raise InvalidInput(f"cannot split the command: {exc}") from exc
    if not os.path.isabs(argv[0]):
        raise InvalidInput("the command must start with an absolute path to the executable")
    return argv


def _timeout(options: Mapping[str, str]) -> int:
    raw = options.get("timeout", str(DEFAULT_TIMEOUT))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_TIMEOUT:
        raise InvalidInput(f"timeout must be 1 to {MAX_TIMEOUT} seconds")
    return int(raw)


def _redact(text: str, *values: str | None) -> str:
    for value in values:
        if value:
            text = text.replace(value, "[redacted]")
    return text


class CommandRotator:
    name = "command"

    def check_options(self, options: Mapping[str, str]) -> None:
        unknown = sorted(set(options) - _OPTIONS)
        if unknown:
            raise InvalidInput(f"the command rotator takes no option {', '.join(unknown)}")
        argv = _argv(options)
        if not (os.path.isfile(argv[0]) and os.access(argv[0], os.X_OK)):
            raise InvalidInput(f"{argv[0]} is not an executable file on the server")
        _timeout(options)
        RandomRotator().check_options(
            {k: v for k, v in options.items() if k in ("length", "alphabet", "format")}
        )

    def generate(self, ctx: RotationContext) -> str:
        return random_value({k: v for k, v in ctx.options.items() if k != "command"})

    def apply(self, ctx: RotationContext, new: str) -> None:
        self._run(ctx, "apply", new)

    def verify(self, ctx: RotationContext, new: str) -> None:
        self._run(ctx, "verify", new)

    def retire(self, ctx: RotationContext, old: str) -> None:
        self._run(ctx, "retire", old)

    def _run(self, ctx: RotationContext, step: str, value: str) -> None:
        """Run the script for ``step`` with ``value`` on stdin; RotationFailed unless it
        exits 0 in time."""
        argv = _argv(ctx.options)
        timeout = _timeout(ctx.options)
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "KEYSAFE_ROTATION_STEP": step,
            "KEYSAFE_ROTATION_PATH": ctx.path,
            "KEYSAFE_ROTATION_ID": ctx.extra.get("run_id", ""),
            "KEYSAFE_ROTATION_ROLLBACK": "1" if ctx.extra.get("step") == "rollback" else "0",
        }
        try:
            # argv comes from a policy only an admin may set; no shell is involved.
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=env,
                cwd="/",
                start_new_session=True,  # so a timeout kills the script's children too
            )
        except OSError as exc:
            raise RotationFailed(f"{ctx.path}: cannot start {argv[0]}: {exc.strerror}") from exc
        try:
            _, err = proc.communicate(value.encode(), timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise RotationFailed(
                f"{ctx.path}: the {step} script ran past its {timeout} s timeout"
            ) from None
        if proc.returncode != 0:
            tail = _redact(err.decode(errors="replace"), value, ctx.current)[-STDERR_TAIL:]
            tail = " ".join(tail.split())
            raise RotationFailed(
                f"{ctx.path}: the {step} script exited with status {proc.returncode}"
                + (f": {tail}" if tail else "")
            )
