"""Running a program with secrets in its environment, as ``keysafe run`` promises.

keysafe stays the parent so that it can report start-up failures; it forwards
SIGINT/SIGTERM/SIGHUP/SIGUSR1/SIGUSR2 to the child and returns the child's exit status
(128+N when the child died of signal N), the way a shell would.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
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


def start_child(argv: Sequence[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """Start ``argv`` with exactly ``env``. Raises ChildStartError (127 or 126)."""
    try:
        return subprocess.Popen(list(argv), env=dict(env))
    except FileNotFoundError as exc:
        raise ChildStartError(f"command not found: {argv[0]}", 127) from exc
    except PermissionError as exc:
        raise ChildStartError(f"permission denied: {argv[0]}", 126) from exc
    except OSError as exc:
        raise ChildStartError(f"cannot run {argv[0]}: {exc.strerror or exc}", 126) from exc


def exit_status(status: int) -> int:
    """A Popen return code as a shell reports it: 128+N for death by signal N."""
    return 128 - status if status < 0 else status


class Forwarder:
    """The signals keysafe received while forwarding them to its current child."""

    def __init__(self, current: Callable[[], subprocess.Popen[bytes] | None]) -> None:
        self._current = current
        self.received: list[int] = []  # every forwarded signal, in order
        self._pending: list[int] = []  # those that arrived while there was no child

    def handle(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGINT and _terminal_signals_child():
            return
        self.received.append(signum)
        proc = self._current()
        if proc is None:
            self._pending.append(signum)
        elif proc.poll() is None:
            proc.send_signal(signum)

    def deliver_pending(self, proc: subprocess.Popen[bytes]) -> None:
        """Send ``proc`` the signals that arrived before it existed."""
        while self._pending:
            proc.send_signal(self._pending.pop(0))

    def stop_requested(self) -> bool:
        """True once keysafe itself was asked to stop (SIGINT or SIGTERM)."""
        return any(s in (signal.SIGINT, signal.SIGTERM) for s in self.received)


@contextmanager
def forwarding(current: Callable[[], subprocess.Popen[bytes] | None]) -> Iterator[Forwarder]:
    """Forward FORWARDED signals to the process ``current()`` returns, while inside.

    Handlers go in before any child starts, so no signal can kill keysafe and orphan it.
    """
    forwarder = Forwarder(current)
    previous = {sig: signal.signal(sig, forwarder.handle) for sig in FORWARDED}
    try:
        yield forwarder
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_child(argv: Sequence[str], env: Mapping[str, str]) -> int:
    """Run ``argv`` with ``env``; return its exit status. Raises ChildStartError."""
    proc: subprocess.Popen[bytes] | None = None
    with forwarding(lambda: proc) as forwarder:
        proc = start_child(argv, env)
        forwarder.deliver_pending(proc)
        status = proc.wait()  # PEP 475: retried after each forwarded signal
    return exit_status(status)
