"""``keysafe operator ...``: initialise, unseal, seal and re-key a vault."""

from __future__ import annotations

import sys
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer

from keysafe.cli.context import state
from keysafe.cli.output import data, message, print_json, table
from keysafe.errors import InvalidInput, ServerError

if TYPE_CHECKING:
    from keysafe.client import SealStatus

app = typer.Typer(help="Initialise, unseal, seal and re-key the vault.", no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Stable JSON output for programs.")]


@app.command("init")
def init(
    ctx: typer.Context,
    shares: Annotated[int, typer.Option("--shares", min=1, max=16)] = 5,
    threshold: Annotated[int, typer.Option("--threshold", min=1, max=16)] = 3,
    as_json: JsonOpt = False,
) -> None:
    """Initialise a new vault: prints the unseal shares and the root token, once."""
    if threshold > shares:
        raise InvalidInput("--threshold cannot exceed --shares")
    with state(ctx).client() as client:
        result = client.init(shares=shares, threshold=threshold)
    if as_json:
        print_json({"shares": result.shares, "root_token": result.root_token})
        return
    for number, share in enumerate(result.shares, 1):
        data(f"Unseal share {number}: {share}")
    data(f"Root token: {result.root_token}")
    message(
        f"Store each share with a different person: any {threshold} of {shares} unseal the "
        "vault. These are shown only this once."
    )


@app.command("unseal")
def unseal(
    ctx: typer.Context,
    reset: Annotated[bool, typer.Option("--reset", help="Discard shares given so far.")] = False,
) -> None:
    """Submit unseal shares: a hidden prompt, or one share per line on stdin."""
    with state(ctx).client() as client:
        if reset:
            _progress(client.unseal(reset=True))
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
            status = client.unseal(share)
            _progress(status)
            if not status.sealed:
                break


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
