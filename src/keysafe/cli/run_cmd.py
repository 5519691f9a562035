"""``keysafe run`` and ``keysafe export``: folders of secrets as environment variables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from keysafe.cli.context import state
from keysafe.errors import InvalidInput

PathsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--path",
        "-p",
        help="Folder whose secrets to inject (repeatable) [the project's <path>/<env> "
        "from .keysafe.toml].",
    ),
]
RawOpt = Annotated[
    bool,
    typer.Option("--raw", help="Pass ${...} references as stored instead of expanding them."),
]
EnvOpt = Annotated[
    str | None,
    typer.Option(
        "--env", "-e", help="Project environment to read (<path>/<env>) [.keysafe.toml's env]."
    ),
]
PrefixOpt = Annotated[
    bool,
    typer.Option("--prefix", help="Prefix each name with its folder (PAYMENTS_DEV_DB_PASSWORD)."),
]
AllowEnvOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-env",
        metavar="NAME",
        help="Let a secret set NAME although it changes how programs start (LD_PRELOAD, "
        "BASH_ENV, PYTHONSTARTUP, PATH, KEYSAFE_*...); refused otherwise (repeatable).",
    ),
]
StrictOpt = Annotated[
    bool,
    typer.Option(
        "--strict",
        help="Fail when a secret's name is not a valid variable name (my-key.v2); "
        "without it such a secret is skipped with a warning.",
    ),
]


def register(app: typer.Typer) -> None:
    app.command(
        "run",
        context_settings={"allow_interspersed_args": False},
        help="Run COMMAND with the secrets of each --path folder in its environment. "
        "Secrets that would set a variable changing how programs start are refused "
        "(see --allow-env); keysafe's own token is not passed on (see --pass-token). "
        "Signals are forwarded; the exit status is the command's. With "
        "--restart-on-change, COMMAND is restarted (or sent --signal) after its secrets "
        "change, for example after a rotation.",
    )(run)
    app.command(
        "export",
        help="Print the secrets of --path folders (or the project's) for another program: "
        "dotenv, json, shell (export lines), docker (an env-file for docker run "
        "--env-file), k8s (a v1 Secret manifest for kubectl apply -f -, with --name) or "
        "github (::add-mask:: lines, values appended to $GITHUB_ENV). ${...} references "
        "are expanded unless --raw.",
    )(export)


def run(
    ctx: typer.Context,
    command: Annotated[list[str], typer.Argument(help="The program and its arguments.")],
    path: PathsOpt = None,
    env: EnvOpt = None,
    raw: RawOpt = False,
    prefix: PrefixOpt = False,
    allow_env: AllowEnvOpt = None,
    strict: StrictOpt = False,
    allow_empty: Annotated[
        bool,
        typer.Option(
            "--allow-empty",
            help="Run COMMAND even when a --path folder holds no secret (exit 3 otherwise: "
            "a mistyped path).",
        ),
    ] = False,
    pass_token: Annotated[
        bool,
        typer.Option(
            "--pass-token",
            help="Give COMMAND the token keysafe uses (KEYSAFE_TOKEN, with KEYSAFE_ADDR and "
            "KEYSAFE_CACERT), e.g. for the SDK; without it COMMAND gets no keysafe token.",
        ),
    ] = False,
    restart_on_change: Annotated[
        bool,
        typer.Option(
            "--restart-on-change",
            help="Watch the folders; when a secret changes, restart COMMAND with the new "
            "values (SIGTERM, then SIGKILL after --stop-timeout).",
        ),
    ] = False,
    signal_name: Annotated[
        str | None,
        typer.Option(
            "--signal",
            help="With --restart-on-change: send this signal (HUP, USR1...) instead of "
            "restarting; COMMAND must then re-read its secrets itself (SDK or file).",
        ),
    ] = None,
    poll: Annotated[
        str | None,
        typer.Option("--poll", help="With --restart-on-change: how often to check [5s]."),
    ] = None,
    stop_timeout: Annotated[
        str | None,
        typer.Option("--stop-timeout", help="With --restart-on-change: wait before SIGKILL [10s]."),
    ] = None,
) -> None:
    from keysafe.cli.child import ChildStartError, run_child
    from keysafe.cli.env_safety import inherited_env
    from keysafe.cli.envmap import fetch_env
    from keysafe.cli.output import error_line, message
    from keysafe.redact.registry import child_env

    if not restart_on_change and (signal_name, poll, stop_timeout) != (None, None, None):
        raise InvalidInput(
            "--signal, --poll and --stop-timeout only apply with --restart-on-change"
        )
    path = folders(path, env)
    base = inherited_env(os.environ, _passed_credentials(ctx) if pass_token else None)
    try:
        if restart_on_change:
            code = _run_watched(
                ctx,
                command,
                base,
                path,
                prefix,
                allow_env or [],
                (strict, allow_empty, raw),
                signal_name,
                poll or "5s",
                stop_timeout or "10s",
            )
        else:
            with state(ctx).client() as client:
                secrets = fetch_env(
                    client,
                    path,
                    prefixed=prefix,
                    allowed=allow_env or (),
                    strict=strict,
                    warn=message,
                    allow_empty=allow_empty,
                    raw=raw,
                )
            # The values' digests (never the values) for keysafe.redact in the child.
            code = run_child(command, {**base, **secrets, **child_env()})
    except ChildStartError as exc:
        message(error_line(exc.detail))
        raise typer.Exit(exc.exit_code) from None
    raise typer.Exit(code)


def folders(paths: list[str] | None, env: str | None) -> list[str]:
    """The --path folders, else the project's ``<prefix>/<env>``; raises InvalidInput."""
    from keysafe.cli.project import PROJECT_FILE, find_project

    if paths:
        if env is not None:
            raise InvalidInput("give --path or --env, not both (--env picks the project's folder)")
        return paths
    proj = find_project()
    if proj is None:
        raise InvalidInput(
            f"--path is required outside a project (no {PROJECT_FILE} here or above; "
            "`keysafe init` makes one)"
        )
    return [proj.folder(env)]


def _passed_credentials(ctx: typer.Context) -> dict[str, str]:
    """What ``--pass-token`` adds: the token keysafe uses, and the server it belongs to
    (so the program's SDK never sends it to another server, e.g. its profile's)."""
    conn = state(ctx).connection()
    if conn.token is None or conn.addr is None:
        raise InvalidInput("--pass-token: keysafe has no token to pass (log in or set one)")
    passed = {"KEYSAFE_TOKEN": conn.token, "KEYSAFE_ADDR": conn.addr}
    if conn.cacert is not None:
        passed["KEYSAFE_CACERT"] = str(conn.cacert)
    return passed


def _run_watched(
    ctx: typer.Context,
    command: list[str],
    base_env: dict[str, str],
    path: list[str],
    prefix: bool,
    allow_env: list[str],
    checks: tuple[bool, bool, bool],
    signal_name: str | None,
    poll: str,
    stop_timeout: str,
) -> int:
    from keysafe.cli.durations import parse_duration
    from keysafe.cli.envmap import fetch_env
    from keysafe.cli.output import message
    from keysafe.cli.watch import WatchOptions, folder_versions, parse_signal, run_watched
    from keysafe.redact.registry import child_env

    opts = WatchOptions(
        poll=parse_duration(poll),
        stop_timeout=parse_duration(stop_timeout),
        signal=parse_signal(signal_name) if signal_name is not None else None,
    )
    strict, allow_empty, raw = checks
    with state(ctx).client() as client:
        return run_watched(
            command,
            base_env,
            versions=lambda: folder_versions(client, path),
            fetch_env=lambda: {
                **fetch_env(
                    client,
                    path,
                    prefixed=prefix,
                    allowed=allow_env,
                    strict=strict,
                    warn=message,
                    allow_empty=allow_empty,
                    raw=raw,
                ),
                **child_env(),  # digests for keysafe.redact in the child
            },
            opts=opts,
            say=message,
        )


def export(
    ctx: typer.Context,
    path: PathsOpt = None,
    env: EnvOpt = None,
    raw: RawOpt = False,
    fmt: Annotated[
        str,
        typer.Option(
            "--format", "-f", help="dotenv, json, shell, docker, k8s or github (see above)."
        ),
    ] = "dotenv",
    name: Annotated[
        str | None, typer.Option("--name", help="--format k8s: the Secret's name.")
    ] = None,
    namespace: Annotated[
        str | None, typer.Option("--namespace", help="--format k8s: the Secret's namespace.")
    ] = None,
    prefix: PrefixOpt = False,
    allow_env: AllowEnvOpt = None,
    strict: StrictOpt = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Write to FILE (mode 0600; --format github appends to it)."
        ),
    ] = None,
) -> None:
    from keysafe.cli.envmap import fetch_env
    from keysafe.cli.formats import RENDERERS
    from keysafe.cli.output import data, message

    formats = (*RENDERERS, "docker", "k8s", "github")
    if fmt not in formats:
        raise InvalidInput(f"unknown format {fmt!r}: use one of {', '.join(formats)}")
    if fmt == "k8s":
        from keysafe.cli.delivery import check_k8s_name

        check_k8s_name(name)
    elif name is not None or namespace is not None:
        raise InvalidInput("--name and --namespace only apply to --format k8s")
    github_file = _github_target(output) if fmt == "github" else None
    path = folders(path, env)
    sources: dict[str, tuple[str, int]] = {}
    with state(ctx).client() as client:
        # The same names as for run are refused: `eval "$(keysafe export -f shell)"` or a
        # dotenv loader would set them in a shell or program just the same.
        values = fetch_env(
            client,
            path,
            prefixed=prefix,
            allowed=allow_env or (),
            strict=strict,
            warn=message,
            raw=raw,
            sources=sources,
        )
    if github_file is not None:
        from keysafe.cli.delivery import github_env, github_masks

        data(github_masks(values), newline=False)  # masks first, then the values
        fd = os.open(github_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            fh.write(github_env(values))
        message(f"{len(values)} secrets masked and added to {github_file}")
        return
    text = _render(fmt, values, sources, name or "", namespace)
    if output is None:
        data(text, newline=False)
        return
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def _github_target(output: Path | None) -> Path:
    """Where ``--format github`` appends: --output, else $GITHUB_ENV; never stdout (the
    values would land in the job's log)."""
    if output is not None:
        return output
    target = os.environ.get("GITHUB_ENV")
    if not target:
        raise InvalidInput(
            "--format github appends to $GITHUB_ENV, which is not set (not in GitHub "
            "Actions?); pass --output FILE"
        )
    return Path(target)


def _render(
    fmt: str,
    values: dict[str, str],
    sources: dict[str, tuple[str, int]],
    name: str,
    namespace: str | None,
) -> str:
    from keysafe.cli.formats import RENDERERS

    if fmt == "k8s":
        from keysafe.cli.delivery import to_k8s

        return to_k8s(values, sources, name=name, namespace=namespace)
    if fmt == "docker":
        from keysafe.cli.delivery import to_docker

        return to_docker(values)
    return RENDERERS[fmt](values)
