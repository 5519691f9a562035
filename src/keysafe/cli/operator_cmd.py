"""``keysafe operator ...``: initialise, unseal, seal and re-key a vault."""

from __future__ import annotations

import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import orjson
import typer

from keysafe.cli import backup_cmd
from keysafe.cli.context import state
from keysafe.cli.output import data, message, print_json, table
from keysafe.errors import InvalidInput, ServerError

if TYPE_CHECKING:
    from keysafe.client import SealStatus

app = typer.Typer(help="Initialise, unseal, seal and re-key the vault.", no_args_is_help=True)
app.command("backup")(backup_cmd.backup)
app.command("restore")(backup_cmd.restore)
JsonOpt = Annotated[bool, typer.Option("--json", help="Stable JSON output for programs.")]


@app.command("init")
def init(
    ctx: typer.Context,
    shares: Annotated[int, typer.Option("--shares", min=1, max=16)] = 5,
    threshold: Annotated[int, typer.Option("--threshold", min=1, max=16)] = 3,
    init_token_file: Annotated[
        Path | None,
        typer.Option(
            "--init-token-file",
            envvar="KEYSAFE_INIT_TOKEN_FILE",
            help="The server's one-time init token (keysafe server --init-token-file).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Initialise a new vault: prints the unseal shares and the root token, once."""
    if threshold > shares:
        raise InvalidInput("--threshold cannot exceed --shares")
    init_token = None
    if init_token_file is not None:
        try:
            init_token = init_token_file.read_text().strip()
        except OSError as exc:
            raise InvalidInput(f"cannot read {init_token_file}: {exc.strerror}") from exc
    with state(ctx).client() as client:
        result = client.init(shares=shares, threshold=threshold, init_token=init_token)
    if as_json:
        print_json(
            {"shares": result.shares, "root_token": result.root_token, "recovery": result.recovery}
        )
        return
    kind = "Recovery" if result.recovery else "Unseal"
    for number, share in enumerate(result.shares, 1):
        data(f"{kind} share {number}: {share}")
    data(f"Root token: {result.root_token}")
    if result.recovery:
        message(
            "The unseal source unseals this vault. Store each recovery share with a "
            f"different person: any {threshold} of {shares} authorise generate-root, an "
            "unseal after `operator seal` and unseal-migrate; they cannot unseal without "
            "the source. These are shown only this once."
        )
        return
    message(
        f"Store each share with a different person: any {threshold} of {shares} unseal the "
        "vault. These are shown only this once."
    )


@app.command("unseal-migrate")
def unseal_migrate(
    ctx: typer.Context,
    to: Annotated[
        str,
        typer.Option(
            "--to", help="'source' (the server's KEYSAFE_SEAL) or 'shamir' (new unseal shares)."
        ),
    ],
    shares: Annotated[int, typer.Option("--shares", min=1, max=16)] = 5,
    threshold: Annotated[int, typer.Option("--threshold", min=1, max=16)] = 3,
    as_json: JsonOpt = False,
) -> None:
    """Move the vault between Shamir shares and an unseal source. Give a threshold of the
    current unseal shares (to a source) or recovery shares (to Shamir), one per line on
    stdin or at hidden prompts (empty line ends). Prints the new shares, once."""
    if to not in ("source", "shamir"):
        raise InvalidInput("--to is 'source' or 'shamir'")
    if threshold > shares:
        raise InvalidInput("--threshold cannot exceed --shares")
    if sys.stdin.isatty():
        import getpass

        current = []
        while entry := getpass.getpass("Current share (hidden, empty to finish): "):
            current.append(entry)
    else:
        current = sys.stdin.read().splitlines()
    current = [c.strip() for c in current if c.strip()]
    if not current:
        raise InvalidInput("no current share given")
    with state(ctx).client() as client:
        result = client.unseal_migrate(to, current, shares, threshold)
    if as_json:
        print_json({"shares": result.shares, "recovery": result.recovery})
        return
    kind = "Recovery" if result.recovery else "Unseal"
    for number, share in enumerate(result.shares, 1):
        data(f"{kind} share {number}: {share}")
    message(
        f"Migrated: the old shares open nothing any more. Any {threshold} of these {shares} "
        f"{kind.lower()} shares now count. Shown only this once."
    )


@app.command("unseal")
def unseal(
    ctx: typer.Context,
    reset: Annotated[bool, typer.Option("--reset", help="Discard shares given so far.")] = False,
    nonce: Annotated[
        str | None,
        typer.Option(
            "--nonce",
            envvar="KEYSAFE_UNSEAL_NONCE",
            help="The unseal attempt's nonce (shown after its first share; remembered on "
            "this machine).",
        ),
    ] = None,
) -> None:
    """Submit unseal shares: a hidden prompt, or one share per line on stdin.

    The first share starts an unseal attempt with a nonce; further shares and --reset
    must give it. It is remembered under KEYSAFE_HOME for the next share from this
    machine, and printed for share holders elsewhere (--nonce)."""
    with state(ctx).client() as client:
        nonce = nonce or _remembered_nonce(client.addr)
        if reset:
            _progress(client.unseal(reset=True, nonce=nonce))
            _remember_nonce(client.addr, "")
            return
        if sys.stdin.isatty():
            import getpass

            shares = [getpass.getpass("Unseal share (hidden): ")]
        else:
            shares = [line.strip() for line in sys.stdin.read().splitlines()]
        shares = [s for s in shares if s]
        if not shares:
            raise InvalidInput("no unseal share given")
        status = None
        for share in shares:
            status = client.unseal(share, nonce=nonce)
            nonce = status.nonce or nonce
            _progress(status)
            if not status.sealed:
                break
        assert status is not None
        _remember_nonce(client.addr, status.nonce if status.sealed else "")
        if status.sealed and status.nonce:
            message(
                f"Unseal nonce: {status.nonce} (share holders on other machines: "
                "keysafe operator unseal --nonce ...)"
            )


_NONCE_FILE = "unseal-nonces.json"


def _nonce_path() -> Path:
    from keysafe.client._config import home_dir

    return home_dir() / _NONCE_FILE


def _remembered_nonce(addr: str) -> str | None:
    try:
        doc = orjson.loads(_nonce_path().read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    value = doc.get(addr) if isinstance(doc, dict) else None
    return value if isinstance(value, str) and value else None


def _remember_nonce(addr: str, nonce: str) -> None:
    """Keep (or with "" forget) the server's unseal nonce, in a 0600 file."""
    path = _nonce_path()
    try:
        doc = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        doc = {}
    if not isinstance(doc, dict):
        doc = {}
    if nonce:
        doc[addr] = nonce
    elif doc.pop(addr, None) is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(orjson.dumps(doc))
    except OSError as exc:  # only a convenience: the nonce was printed
        message(f"could not remember the unseal nonce in {path}: {exc.strerror}")


@app.command("generate-root")
def generate_root(ctx: typer.Context) -> None:
    """A new root token (after the old one was lost or revoked): give the unseal key or a
    threshold of shares, one per line on stdin or at hidden prompts (empty line ends)."""
    if sys.stdin.isatty():
        import getpass

        material = []
        while entry := getpass.getpass("Unseal key or share (hidden, empty to finish): "):
            material.append(entry)
    else:
        material = sys.stdin.read().splitlines()
    if not any(m.strip() for m in material):
        raise InvalidInput("no unseal key or share given")
    with state(ctx).client() as client:
        token = client.generate_root(material)
    data(token)
    message("New root token printed above (shown only this once).")


def _progress(status: SealStatus) -> None:
    if not status.sealed:
        message("Vault unsealed.")
    else:
        message(f"Unseal progress: {status.progress}/{status.threshold or '?'} shares")


@app.command("seal")
def seal(ctx: typer.Context) -> None:
    """Seal the vault: every request fails until it is unsealed again."""
    with state(ctx).client() as client:
        client.seal()
    message("Vault sealed.")


@app.command("status")
def status(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Initialisation and seal state."""
    with state(ctx).client() as client:
        st = client.seal_status()
    if as_json:
        print_json(asdict(st))
        return
    table(None, ["FIELD", "VALUE"], [(k, v) for k, v in asdict(st).items()])


@app.command("rotate-key")
def rotate_key(ctx: typer.Context) -> None:
    """Start a new encryption key version; new writes use it, rewrap moves old data."""
    with state(ctx).client() as client:
        version = client.rotate_key()
    data(f"keyring version {version}")
    message("Run `keysafe operator rewrap` to re-encrypt existing data under it.")


@app.command("rewrap")
def rewrap(
    ctx: typer.Context,
    batch: Annotated[int, typer.Option("--batch", min=1, max=10000)] = 500,
) -> None:
    """Re-encrypt all data under the newest key, in batches, with a progress bar."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with state(ctx).client() as client:
        first = client.rewrap(batch)
        progress = Progress(
            TextColumn("rewrap"),
            BarColumn(),
            MofNCompleteColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        with progress:
            task = progress.add_task("rewrap", total=first.total or 1)
            done = first.total - first.remaining
            progress.update(task, completed=done)
            current = first
            while current.remaining > 0:
                current = client.rewrap(batch)
                if current.rewrapped == 0 and current.remaining > 0:
                    raise ServerError(f"rewrap made no progress with {current.remaining} left")
                progress.update(
                    task, total=current.total, completed=current.total - current.remaining
                )
    message(f"Rewrapped {current.total} items under keyring version {current.keyring_version}.")


@app.command("members")
def members(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """The nodes of the cluster: id, address, version, seal state, status (up, or down
    after 30 s without a heartbeat) and last heartbeat, one node a line."""
    from keysafe.timefmt import iso_us

    with state(ctx).client() as client:
        found = client.members()
    if as_json:
        print_json(found)
        return
    columns = ("ID", "ADDRESS", "VERSION", "SEALED", "STATUS", "STARTED", "HEARTBEAT")
    rows = [
        (
            str(m["id"]),
            str(m["address"]) or "-",
            str(m["version"]),
            "yes" if m["sealed"] else "no",
            str(m["status"]),
            iso_us(int(m["started_at"])) or "",
            iso_us(int(m["heartbeat_at"])) or "",
        )
        for m in found
    ]
    # Plain space-aligned columns, never folded: easy to read and to cut or awk.
    widths = [max(len(row[i]) for row in (columns, *rows)) for i in range(len(columns))]
    for row in (columns, *rows):
        data("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
