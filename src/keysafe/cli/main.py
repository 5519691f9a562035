"""The ``keysafe`` program: dispatch, and every error as one line and an exit code.

Start-up time matters (``keysafe secret get`` runs inside scripts): a plain
``secret get`` is answered by :mod:`keysafe.cli.fastget` without importing typer or
httpx; everything else goes through the Typer app in :mod:`keysafe.cli.app`, built only
for the command group named on the command line, with typer's pydantic coercion
replaced for plain parameters (:mod:`keysafe.cli.coercion`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from keysafe.cli.output import error_line
from keysafe.errors import KeysafeError


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code; every failure is one ``keysafe: ...`` line."""
    args = list(argv) if argv is not None else sys.argv[1:]
    from keysafe.cli import fastget

    fast = fastget.parse(args)
    if fast is not None:
        return _guard(lambda: fastget.run(fast))
    return _guard(lambda: _run_app(args))


def _run_app(args: list[str]) -> int:
    # httpx's package imports its own command-line tool (click, rich, pygments: ~100 ms)
    # unless that module is unavailable; this process never runs httpx's CLI.
    if "httpx" not in sys.modules:
        sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    import typer

    # typer vendors click; this is the "no subcommand given" case, which shows the help.
    from typer._click.exceptions import NoArgsIsHelpError
    from typer.main import get_command

    from keysafe.cli import coercion
    from keysafe.cli.app import app
    from keysafe.cli.helpfmt import plain_metavars
    from keysafe.cli.lazy import only_command

    coercion.install()
    command = get_command(only_command(app, args))
    plain_metavars(command)  # usage lines without Python types
    try:
        result = command.main(args=args, prog_name="keysafe", standalone_mode=False)
    except NoArgsIsHelpError as exc:
        sys.stderr.write(exc.format_message() + "\n")  # the help text, not an error line
        return 2
    except typer.TyperException as exc:  # click usage errors: bad option, missing argument
        return _fail(exc.format_message(), exc.exit_code)
    except typer.Abort:
        return _fail("aborted", 130)
    return result if isinstance(result, int) else 0


def _guard(call: Callable[[], int]) -> int:
    try:
        return call()
    except KeysafeError as exc:
        return _fail(exc.detail, exc.exit_code)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except BrokenPipeError:
        # The reader went away (`keysafe secret list | head`): not an error worth a line.
        _silence_stdout()
        return 1
    except Exception as exc:  # last resort: one line, never a traceback with locals
        return _fail(f"unexpected error: {type(exc).__name__}: {exc}", 8)


def _fail(detail: str, code: int) -> int:
    try:
        sys.stderr.write(error_line(detail) + "\n")
        sys.stderr.flush()
    except OSError:
        pass
    return code


def _silence_stdout() -> None:
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def main() -> None:
    """Console-script entry point (``keysafe = keysafe.cli.main:main``)."""
    sys.exit(run())


if __name__ == "__main__":
    main()
