"""``keysafe run --restart-on-change``: keep a program on the current secrets.

Every ``--poll`` seconds keysafe lists the versions of the secrets in each ``--path``
folder (paths and version numbers only, never values). When any changed, it fetches the
values again and, if the environment they make is different:

- by default restarts the program: SIGTERM, up to ``--stop-timeout`` for it to exit,
  SIGKILL after that, then the same command with the new environment;
- with ``--signal NAME`` sends it that signal instead and leaves it running. The
  environment of a running process cannot change, so such a program must re-read its
  secrets itself on the signal (through the SDK, ``Client.refresh``, or a file it was
  given).

When the program exits on its own, keysafe exits with its status, as without the flag.
A failed check (server restarting, network) is reported once on stderr and retried at
the next poll; the program keeps running on the values it has. A secret that appears
under a name ``keysafe run`` refuses (:mod:`keysafe.cli.env_safety`) fails the check the
same way: the program is neither restarted nor signalled with it.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from keysafe.cli.child import exit_status, forwarding, start_child
from keysafe.client._paths import check_folder
from keysafe.errors import InvalidInput, KeysafeError

if TYPE_CHECKING:
    from keysafe.client import Client

Versions = dict[str, int]
# Signals that cannot be caught could never mean "re-read your secrets".
_UNUSABLE = {signal.SIGKILL, signal.SIGSTOP}


@dataclass(frozen=True, slots=True)
class WatchOptions:
    poll: float
    stop_timeout: float
    signal: int | None = None  # None: restart the program


def parse_signal(name: str) -> int:
    """``HUP``, ``SIGHUP`` or ``hup`` -> the signal number; raises InvalidInput."""
    text = name.strip().upper()
    if not text.startswith("SIG"):
        text = "SIG" + text
    try:
        sig = signal.Signals[text]
    except KeyError:
        raise InvalidInput(f"unknown signal {name!r}: use a name such as HUP or USR1") from None
    if sig in _UNUSABLE:
        raise InvalidInput(f"{sig.name} cannot be caught; leave out --signal to restart instead")
    return int(sig)


def folder_versions(client: Client, folders: Sequence[str]) -> Versions:
    """``{path: version}`` of the secrets directly under each folder (no values)."""
    found: Versions = {}
    for raw in folders:
        folder = check_folder(raw)
        for entry in client.list_secrets(folder + "/", recursive=False, values=False):
            if entry.path.rsplit("/", 1)[0] == folder:
                found[entry.path] = entry.version
    return found


def run_watched(
    argv: Sequence[str],
    base_env: Mapping[str, str],
    versions: Callable[[], Versions],
    fetch_env: Callable[[], dict[str, str]],
    opts: WatchOptions,
    say: Callable[[str], None],
) -> int:
    """Run ``argv`` and keep it on the current secrets; its exit status when it exits
    on its own (or after keysafe was told to stop). Raises ChildStartError, and the
    errors of the first ``versions``/``fetch_env`` (before anything started)."""
    # Versions first: a write between the two calls shows up at the next poll.
    seen = versions()
    env = fetch_env()
    proc: subprocess.Popen[bytes] | None = None
    with forwarding(lambda: proc) as forwarder:
        proc = start_child(argv, {**base_env, **env})
        forwarder.deliver_pending(proc)
        failing = False
        while True:
            try:
                return exit_status(proc.wait(timeout=opts.poll))
            except subprocess.TimeoutExpired:
                pass
            if forwarder.stop_requested():
                continue  # told to stop: only wait for the program now
            try:
                now = versions()
                fresh = fetch_env() if now != seen else env
            except KeysafeError as exc:
                if not failing:
                    say(f"keysafe: cannot check the secrets for changes: {exc.detail}")
                failing = True
                continue
            if failing:
                say("keysafe: checking the secrets for changes again")
                failing = False
            seen = now
            if fresh == env:
                continue  # new versions with the same values: nothing to do
            env = fresh
            if opts.signal is not None:
                say(f"keysafe: secrets changed; sending {signal.Signals(opts.signal).name}")
                if proc.poll() is None:
                    proc.send_signal(opts.signal)
                continue
            if proc.poll() is not None:
                return exit_status(proc.returncode)  # it exited on its own meanwhile
            say("keysafe: secrets changed; restarting the program")
            _stop(proc, opts.stop_timeout)
            if forwarder.stop_requested():
                return exit_status(proc.returncode)
            proc = start_child(argv, {**base_env, **env})
            forwarder.deliver_pending(proc)


def _stop(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, then SIGKILL when ``proc`` is still there after ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
