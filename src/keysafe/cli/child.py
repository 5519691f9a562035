"""Running a program with secrets in its environment, as ``keysafe run`` promises.

keysafe stays the parent so that it can report start-up failures; it forwards
SIGINT/SIGTERM/SIGHUP/SIGUSR1/SIGUSR2 to the child and returns the child's exit status
(128+N when the child died of signal N), the way a shell would.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from types import FrameType

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)


class ChildStartError(Exception):
    """The program could not be started; ``exit_code`` follows the shell (126/127)."""

    def __init__(self, detail: str, exit_code: int) -> None:
        super().__init__(detail)
        self.detail = detail
        self.exit_code = exit_code


def _terminal_signals_child() -> bool:
    """True when a terminal's Ctrl-C already reaches the child directly.

    The child shares our process group; when that group is the terminal's foreground
    group the kernel sends SIGINT to both of us, and forwarding would deliver it twice.
    (A ``kill -INT`` aimed at keysafe alone in that situation is therefore not forwarded.)
    """
    try:
        fd = os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY)
    except OSError:
        return False
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False
    finally:
        os.close(fd)


def run_child(argv: Sequence[str], env: Mapping[str, str]) -> int:
    """Run ``argv`` with ``env``; return its exit status. Raises ChildStartError."""
    proc: subprocess.Popen[bytes] | None = None
    pending: list[int] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGINT and _terminal_signals_child():
            return
        if proc is None:
            pending.append(signum)  # arrived before the child existed: deliver on start
        elif proc.poll() is None:
            proc.send_signal(signum)

    # Handlers go in before the child starts, so no signal can kill keysafe and orphan it.
    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    try:
        try:
            proc = subprocess.Popen(list(argv), env=dict(env))
        except FileNotFoundError as exc:
            raise ChildStartError(f"command not found: {argv[0]}", 127) from exc
        except PermissionError as exc:
            raise ChildStartError(f"permission denied: {argv[0]}", 126) from exc
        except OSError as exc:
            raise ChildStartError(f"cannot run {argv[0]}: {exc.strerror or exc}", 126) from exc
        for signum in pending:
            proc.send_signal(signum)
        status = proc.wait()  # PEP 475: retried after each forwarded signal
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - status if status < 0 else status
