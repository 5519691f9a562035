"""``keysafe scan``: find leaked credentials in files, git history, staged changes or stdin.

Exit codes: 0 nothing found, 1 findings, 2 usage or input error (a bad flag, a bad rule
file, not a git repository, or, when nothing was found, an input that could not be read).
Imports stay light (no server, no HTTP client) so the command starts fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from keysafe.scan.known import KnownDigests
    from keysafe.scan.models import Finding

EXIT_CLEAN, EXIT_FOUND, EXIT_ERROR = 0, 1, 2


def _err(kind: str, message: str) -> None:
    sys.stderr.write(f"keysafe scan: {kind}: {message}\n")


def scan(
    paths: Annotated[
        list[str] | None,
        typer.Argument(help="Files or directories to scan (default: .); '-' reads stdin."),
    ] = None,
    git_history: Annotated[
        bool,
        typer.Option("--git", help="Scan every commit of every branch of the repository at PATH."),
    ] = False,
    staged: Annotated[
        bool, typer.Option("--staged", help="Scan what is staged for the next commit.")
    ] = False,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="Output format: text, json or sarif.")
    ] = "text",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the report to this file instead of stdout."),
    ] = None,
    baseline: Annotated[
        Path | None,
        typer.Option("--baseline", help="Report only findings not in this baseline file."),
    ] = None,
    write_baseline: Annotated[
        Path | None,
        typer.Option(
            "--write-baseline", help="Accept every current finding into this baseline file."
        ),
    ] = None,
    rules: Annotated[
        Path | None, typer.Option("--rules", "-r", help="Custom rules (TOML, gitleaks format).")
    ] = None,
    show_secrets: Annotated[
        bool, typer.Option("--show-secrets", help="Print secrets in full instead of redacted.")
    ] = False,
    no_ignore: Annotated[
        bool, typer.Option("--no-ignore", help="Scan files .gitignore excludes.")
    ] = False,
    archives: Annotated[
        bool, typer.Option("--archives", help="Look inside zip and tar archives.")
    ] = False,
    exclude: Annotated[
        list[str] | None,
        typer.Option("--exclude", "-e", help="Skip paths matching this gitignore-style pattern."),
    ] = None,
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", min=0, help="Worker processes (0: automatic).")
    ] = 0,
    no_progress: Annotated[
        bool, typer.Option("--no-progress", help="Never draw a progress bar.")
    ] = False,
    known_secrets: Annotated[
        bool,
        typer.Option(
            "--known",
            help="Also find values stored in keysafe (needs a server and a token; compares "
            "keyed digests: no value leaves the server, no scanned text leaves this machine).",
        ),
    ] = False,
    known_prefix: Annotated[
        str, typer.Option("--known-prefix", help="Only stored secrets under this path prefix.")
    ] = "",
    report_found: Annotated[
        bool,
        typer.Option(
            "--report",
            help="Report every keysafe key or token found (valid checksum) to the server, "
            "which revokes it.",
        ),
    ] = False,
    exit_code: Annotated[
        int,
        typer.Option(
            "--exit-code", min=0, max=125, help="Exit code when something is found (default 1)."
        ),
    ] = EXIT_FOUND,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Ask each provider (one read-only call, no retries) whether a found "
            "credential is live, revoked or unknown. Sends the secret to its provider.",
        ),
    ] = False,
    only_verified: Annotated[
        bool, typer.Option("--only-verified", help="With --verify: report only live ones.")
    ] = False,
    verify_endpoint: Annotated[
        list[str] | None,
        typer.Option("--verify-endpoint", help="NAME=https://URL: another API base for NAME."),
    ] = None,
    verify_timeout: Annotated[
        float, typer.Option("--verify-timeout", min=0.1, max=60, help="Seconds per call.")
    ] = 5.0,
) -> None:
    """Find leaked credentials. Exit 0 clean, 1 findings, 2 usage or input error."""
    code = run_scan(
        paths or [],
        git_history=git_history,
        staged=staged,
        fmt=fmt,
        output=output,
        baseline=baseline,
        write_baseline=write_baseline,
        rules=rules,
        show_secrets=show_secrets,
        no_ignore=no_ignore,
        archives=archives,
        exclude=exclude or [],
        jobs=jobs,
        progress=not no_progress,
        known_secrets=known_secrets,
        known_prefix=known_prefix,
        report_found=report_found,
        exit_code=exit_code,
        verify=(verify_endpoint or []) if verify or only_verified else None,
        only_verified=only_verified,
        verify_timeout=verify_timeout,
    )
    raise typer.Exit(code)


def run_scan(
    paths: list[str],
    *,
    git_history: bool = False,
    staged: bool = False,
    fmt: str = "text",
    output: Path | None = None,
    baseline: Path | None = None,
    write_baseline: Path | None = None,
    rules: Path | None = None,
    show_secrets: bool = False,
    no_ignore: bool = False,
    archives: bool = False,
    exclude: list[str] | None = None,
    jobs: int = 0,
    progress: bool = True,
    known_secrets: bool = False,
    known_prefix: str = "",
    report_found: bool = False,
    exit_code: int = EXIT_FOUND,
    verify: list[str] | None = None,
    only_verified: bool = False,
    verify_timeout: float = 5.0,
) -> int:
    """Run one scan as the command would and return its exit code; never raises for
    user errors (they are reported on stderr in one line)."""
    from keysafe.errors import KeysafeError

    try:
        return _run(
            paths,
            git_history,
            staged,
            fmt,
            output,
            baseline,
            write_baseline,
            rules,
            show_secrets,
            no_ignore,
            archives,
            exclude or [],
            jobs,
            progress,
            known_prefix if known_secrets else None,
            report_found,
            exit_code,
            (verify, only_verified, verify_timeout),
        )
    except KeysafeError as exc:
        _err("error", exc.detail)
        return EXIT_ERROR
    except KeyboardInterrupt:
        _err("error", "interrupted")
        return 130


def _run(
    paths: list[str],
    git_history: bool,
    staged: bool,
    fmt: str,
    output: Path | None,
    baseline: Path | None,
    write_baseline: Path | None,
    rules_file: Path | None,
    show_secrets: bool,
    no_ignore: bool,
    archives: bool,
    exclude: list[str],
    jobs: int,
    progress: bool,
    known_prefix: str | None = None,
    report_found: bool = False,
    exit_code: int = EXIT_FOUND,
    verifying: tuple[list[str] | None, bool, float] = (None, False, 5.0),
) -> int:
    import time

    from keysafe import __version__
    from keysafe.errors import InvalidInput
    from keysafe.scan import baseline as baselines
    from keysafe.scan import output as render
    from keysafe.scan.engine import Engine
    from keysafe.scan.rules import builtin_rules
    from keysafe.scan.service import ScanOptions, ScanService

    if fmt not in render.FORMATS:
        raise InvalidInput(f"unknown format {fmt!r} (choose text, json or sarif)")
    if git_history and staged:
        raise InvalidInput("--git and --staged cannot be combined")
    if "-" in paths and (len(paths) > 1 or git_history or staged):
        raise InvalidInput("'-' (stdin) cannot be combined with other inputs")
    if rules_file:
        from keysafe.scan import custom_rules  # tomllib: only when asked

        ruleset = custom_rules.load(rules_file)
        for warning in ruleset.warnings:
            _err("warning", warning)
        active = (builtin_rules() if ruleset.use_default else []) + ruleset.rules
        engine = Engine(active, ruleset.allow_paths, ruleset.allow_values, ruleset.stopwords)
    else:
        active = builtin_rules()
        engine = Engine(active)
    if known_prefix is not None:
        from keysafe.scan.known import KNOWN_RULE

        engine.known = _fetch_known(known_prefix)
        active = [*active, KNOWN_RULE]
    endpoints, only_verified, verify_timeout = verifying
    if endpoints is not None:
        from keysafe.scan import verify  # httpx: only when asked

        parsed = verify.parse_endpoints(endpoints)
    known = baselines.load(baseline) if baseline else {}
    options = ScanOptions(
        no_ignore=no_ignore, archives=archives, exclude=exclude, jobs=jobs, progress=progress
    )
    service = ScanService(engine, options)
    targets = paths or ["."]
    started = time.monotonic()
    if git_history or staged:
        if len(targets) > 1:
            raise InvalidInput("--git and --staged take one repository path")
        result = service.scan_git(targets[0]) if git_history else service.scan_staged(targets[0])
    elif targets == ["-"]:
        result = service.scan_stream(sys.stdin.buffer)
    else:
        result = service.scan_paths(targets)
    elapsed = time.monotonic() - started
    for warning in result.warnings:
        _err("warning", warning)
    for problem in result.problems:
        _err("error", problem)
    unit = "commit" if git_history else "file" if not staged and targets != ["-"] else "input"
    if write_baseline is not None:
        baselines.write(write_baseline, result.findings)
        sys.stderr.write(
            f"keysafe scan: wrote {len(result.findings)} finding(s) to {write_baseline}\n"
        )
        return EXIT_ERROR if result.problems else EXIT_CLEAN
    findings = baselines.filter_new(result.findings, known)
    if endpoints is not None:
        verify.verify(findings, endpoints=parsed, timeout=verify_timeout)
        if only_verified:
            findings = [f for f in findings if f.verification == verify.LIVE]
    report_failed = report_found and not _report(findings)
    report = render.render(fmt, findings, active, show_secrets=show_secrets, version=__version__)
    if output is not None:
        try:
            output.write_text(report, encoding="utf-8")
        except OSError as exc:
            raise InvalidInput(f"cannot write {output}: {exc.strerror}") from exc
    elif report:
        sys.stdout.write(report)
    sys.stderr.write(_summary(result.scanned, unit, result.bytes, elapsed, len(findings)))
    if report_failed:
        return EXIT_ERROR
    if findings:
        return exit_code
    return EXIT_ERROR if result.problems else EXIT_CLEAN


def _summary(count: int, unit: str, size: int, seconds: float, found: int) -> str:
    """One line for people: what was scanned, how long it took, what was found."""
    scanned = f"{count} {unit}{'' if count == 1 else 's'}, {_size(size)} in {seconds:.2f} s"
    if not found:
        return f"keysafe scan: {scanned}: no leaks found\n"
    return f"keysafe scan: {scanned}: {found} leak{'' if found == 1 else 's'} found\n"


def _size(size: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def _fetch_known(prefix: str) -> KnownDigests:
    """Digests of the stored values this token may read; raises KeysafeError."""
    from keysafe.client import Client
    from keysafe.errors import ServerError
    from keysafe.scan.known import KnownDigests

    with Client() as client:
        reply = client.known_digests(prefix)
    try:
        known = KnownDigests.from_reply(reply)
    except (ValueError, KeyError, TypeError) as exc:
        raise ServerError(f"the server sent unusable digests: {exc}") from exc
    sys.stderr.write(f"keysafe scan: comparing against {len(known)} stored value(s)\n")
    return known


def _report(findings: list[Finding]) -> bool:
    """Send found keysafe credentials to the server for revocation; False on failure."""
    from keysafe.client import Client
    from keysafe.crypto import keyformat
    from keysafe.errors import KeysafeError
    from keysafe.scan.models import redact

    found: dict[str, str] = {}
    for finding in findings:
        if keyformat.is_valid(finding.secret) and finding.secret not in found:
            where = f"{finding.file}:{finding.line}"
            found[finding.secret] = f"{where} ({finding.commit})" if finding.commit else where
    if not found:
        return True
    try:
        with Client() as client:
            results = client.report_leaks(list(found.items()))
    except KeysafeError as exc:
        _err("error", f"could not report {len(found)} keysafe credential(s): {exc.detail}")
        return False
    for (secret, where), result in zip(found.items(), results, strict=False):
        status = str(result.get("status", "unknown")).replace("_", " ")
        sys.stderr.write(f"keysafe scan: reported {redact(secret)} from {where}: {status}\n")
    return True


def register(app: typer.Typer) -> None:
    """Add ``scan`` to the ``keysafe`` application."""
    app.command("scan")(scan)
