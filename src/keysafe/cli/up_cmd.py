"""``keysafe up``: the embedded quick start (dev vault, local TLS, profile, server)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import IO, Annotated

import typer

from keysafe.cli.context import state
from keysafe.errors import InvalidInput

HOST = "127.0.0.1"


def register(app: typer.Typer) -> None:
    app.command("up")(up)


def up(
    ctx: typer.Context,
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="HTTPS port.")] = 8200,
) -> None:
    """Start a local dev vault over HTTPS on 127.0.0.1 and write the profile. Ctrl-C stops it.

    First run: initialises the vault under KEYSAFE_HOME, with a DEV unseal key kept on
    disk there (0600), and saves the root token in the profile (0600). Later runs reuse
    everything.
    """
    from keysafe.cli.output import message
    from keysafe.cli.profile import read_profile, write_profile
    from keysafe.client._config import PROFILE_NAME
    from keysafe.crypto.tls import ensure_local_tls
    from keysafe.server.runner import prepare_embedded, run_server

    settings = state(ctx).settings()
    addr = f"https://{HOST}:{port}"
    lock = _claim_home(settings.home, addr)  # held open until this process ends
    _check_port_free(port)
    embedded = prepare_embedded(settings)
    tls = ensure_local_tls(settings.home / "tls")
    profile_file = settings.home / PROFILE_NAME
    previous = read_profile(profile_file)
    # The root token exists only in the first init's reply: keep it from then on.
    token = embedded.root_token or previous.get("token")
    write_profile(profile_file, {"addr": addr, "token": token, "cacert": str(tls.ca_cert)})

    message(f"keysafe dev vault starting on {addr}")
    message(
        f"  unseal key: {embedded.unseal_key_file} -- a DEV key stored on disk (0600); "
        "use `keysafe server` with unseal shares for real secrets"
    )
    message(f"  TLS CA:     {tls.ca_cert}")
    if settings.ui:
        message(f"  console:    {addr}/ui/")
    message(f"  profile:    {profile_file} (0600): `keysafe ...` in any shell now uses this vault")
    if embedded.root_token:
        message("  new vault initialised; its root token was saved to the profile")
    elif not token:
        message("  no token in the profile: set KEYSAFE_TOKEN to use this vault")
    message("Press Ctrl-C to stop.")
    with contextlib.suppress(KeyboardInterrupt):
        run_server(
            settings,
            host=HOST,
            port=port,
            workers=2,
            tls_cert=tls.cert,
            tls_key=tls.key,
            insecure_http=False,
            unseal_key_file=embedded.unseal_key_file,
        )
    message("keysafe stopped.")
    lock.close()


def _claim_home(home: Path, addr: str) -> IO[str]:
    """Take ``home/up.lock`` (an flock, released by the kernel when the process ends, even
    killed); a second ``keysafe up`` on the same home would rewrite its profile and fight
    over its database, so it stops here naming the one that runs (Conflict, exit 4)."""
    import fcntl
    import os

    from keysafe.errors import Conflict

    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    fh = open(home / "up.lock", "a+", encoding="utf-8")  # noqa: SIM115 - held for the run
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.seek(0)
        running = fh.read().strip() or "another process"
        fh.close()
        raise Conflict(
            f"keysafe up is already running on {home}: {running}; stop it first or use "
            "another KEYSAFE_HOME"
        ) from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"pid {os.getpid()} at {addr}\n")
    fh.flush()
    return fh


def _check_port_free(port: int) -> None:
    """Fail early with one clear line instead of a server start-up traceback."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            raise InvalidInput(
                f"port {port} on {HOST} is in use ({exc.strerror}); choose another with --port"
            ) from exc
