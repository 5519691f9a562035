"""``python -m keysafe.scan``: the scan command on its own, without the rest of the CLI."""

from __future__ import annotations

import typer

from keysafe.cli.scan_cmd import register


def main() -> None:
    """Run ``keysafe scan`` as a standalone program."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    register(app)
    app()


if __name__ == "__main__":
    main()
