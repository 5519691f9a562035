"""People: ``keysafe login|logout``, ``keysafe mfa enroll|verify``, ``keysafe user ...``,
``keysafe role ...``.

Passwords never come from argv (shell history, ``ps``): a hidden prompt, or the first
line of stdin with ``--password-stdin``. A TOTP code may be given with ``--code``: it
works once and for a minute at most. ``keysafe login`` saves the session token in the
profile (0600) so that later commands use it; the token it replaces (for instance the
root token ``keysafe up`` saved) is kept beside it and put back by ``keysafe logout``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Annotated, Any

import typer

from keysafe.cli.context import state
from keysafe.cli.output import cell, confirm, data, message, print_json, table
from keysafe.errors import InvalidInput

JsonOpt = Annotated[bool, typer.Option("--json", help="Stable JSON output for programs.")]
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from the first line of stdin.")
]
YesOpt = Annotated[
    bool, typer.Option("--yes", "-y", help="Do not ask (needed when not on a terminal).")
]
CodeOpt = Annotated[
    str | None,
    typer.Option("--code", help="TOTP or recovery code (else prompted when stdin is a terminal)."),
]

user_app = typer.Typer(help="People: create, list, unlock, disable, delete.", no_args_is_help=True)
role_app = typer.Typer(help="Roles: named groups of policies for people.", no_args_is_help=True)
mfa_app = typer.Typer(help="Your second factor: enrol TOTP, step up.", no_args_is_help=True)

_SAVED = "token_before_login"  # profile key: the token a login replaced


def register(app: typer.Typer) -> None:
    app.add_typer(user_app, name="user")
    app.add_typer(role_app, name="role")
    app.add_typer(mfa_app, name="mfa")
    app.command("login")(login)
    app.command("logout")(logout)


# -- reading secrets from the person -------------------------------------------------------


def _line() -> str:
    text = sys.stdin.readline()
    return text[:-1] if text.endswith("\n") else text


def _password(from_stdin: bool, *, confirm: bool = False) -> str:
    """The password from stdin's next line or a hidden prompt (twice with ``confirm``)."""
    if from_stdin:
        value = _line().removesuffix("\r")
    else:
        import getpass

        if not sys.stdin.isatty():
            raise InvalidInput("no terminal to prompt for the password: use --password-stdin")
        value = getpass.getpass("Password: ")
        if confirm and getpass.getpass("Repeat password: ") != value:
            raise InvalidInput("the two passwords differ")
    if not value:
        raise InvalidInput("the password is empty")
    return value


def _code(given: str | None, prompt: str, *, optional: bool) -> str | None:
    """``given``, else a prompt on a terminal, else the next line of stdin."""
    if given is not None:
        return given.strip()
    if sys.stdin.isatty():
        value = typer.prompt(prompt, default="" if optional else None, show_default=False)
    else:
        value = _line()
    value = str(value).strip()
    if not value and not optional:
        raise InvalidInput("a code is needed")
    return value or None


# -- login, logout, MFA --------------------------------------------------------------------


def login(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME")],
    password_stdin: PasswordStdin = False,
    code: CodeOpt = None,
) -> None:
    """Log in as NAME (password, then the TOTP or a recovery code once enrolled) and save
    the session in the profile. Exit 6 for a wrong name, password or code; 9 when locked."""
    from keysafe.cli.profile import read_profile, write_profile
    from keysafe.client._config import profile_path, resolve
    from keysafe.client._failover import split_addrs

    password = _password(password_stdin)
    second = _code(code, "TOTP or recovery code (Enter if none enrolled)", optional=True)
    with state(ctx).client() as client:
        result = client.login(name, password, second)
        used = {a.lower() for a in client.addrs}
        addr = ",".join(client.addrs)  # a session is good on every node of the cluster
    path = profile_path()
    profile: dict[str, str | None] = dict(read_profile(path))
    if not used <= {a.lower() for a in split_addrs(profile.get("addr") or addr)}:
        # Another server than the profile's: the profile's token and CA belong to that
        # one and must never be sent here (nor the new session there). Start afresh.
        cacert = resolve(state(ctx).addr, None, state(ctx).cacert).cacert
        profile = {"addr": addr, "cacert": str(cacert) if cacert else None}
    previous = profile.get("token")
    if previous and not previous.startswith("ks_sess_"):
        profile[_SAVED] = previous
    profile["token"] = result["token"]
    profile["addr"] = profile.get("addr") or addr
    write_profile(path, profile)
    how = "with a second factor" if result["mfa"] else "with a password only"
    message(f"logged in as {result['name']} ({how}); session saved in {path}")
    import os

    if os.environ.get("KEYSAFE_TOKEN"):
        message("note: KEYSAFE_TOKEN is set and wins over the profile's session")


def logout(ctx: typer.Context) -> None:
    """End the session the profile holds (revoked on the server) and put back the token
    the login replaced."""
    from keysafe.cli.profile import read_profile, write_profile
    from keysafe.client._config import profile_path

    path = profile_path()
    profile: dict[str, str | None] = dict(read_profile(path))
    token = profile.get("token") or ""
    if not token.startswith("ks_sess_"):
        raise InvalidInput("the profile holds no session: nothing to log out of")
    from keysafe.errors import Unauthenticated

    try:
        with state(ctx).client() as client:
            client.logout()
    except Unauthenticated:
        pass  # already expired or revoked: still forget it
    profile["token"] = profile.pop(_SAVED, None)
    write_profile(path, profile)
    message("logged out")


@mfa_app.command("enroll")
def mfa_enroll(
    ctx: typer.Context,
    password_stdin: PasswordStdin = False,
    code: Annotated[
        str | None,
        typer.Option(
            "--code",
            help="Confirm an enrolment begun earlier with this TOTP code (for scripts: run "
            "`mfa enroll --begin` first, compute the code from its URI, then this).",
        ),
    ] = None,
    begin: Annotated[
        bool,
        typer.Option("--begin", help="Only start: print the URI and QR code, confirm later."),
    ] = False,
) -> None:
    """Enrol a TOTP authenticator: prints its otpauth URI and a QR code, asks for a code
    to confirm, then prints recovery codes ONCE (keep them offline)."""
    from keysafe.access.totp import qr_text

    if code is not None:
        if begin:
            raise InvalidInput("give --begin or --code, not both")
        with state(ctx).client() as client:
            codes = client.confirm_totp(code.strip())
        message("Second factor enrolled. Recovery codes, each works once (shown only now):")
        for item in codes:
            data(item)
        return
    password = _password(password_stdin)
    with state(ctx).client() as client:
        begun = client.begin_totp(password)
        uri = begun["otpauth_uri"]
        data(qr_text(uri, ansi=sys.stdout.isatty()), newline=False)
        data(uri)
        message("Scan the QR code (or add the URI) in an authenticator app.")
        if begin:
            message("Then confirm with: keysafe mfa enroll --code CODE")
            return
        code = _code(None, "Code from the app", optional=False)
        assert code is not None
        codes = client.confirm_totp(code)
    message("Second factor enrolled. Recovery codes, each works once (shown only now):")
    for item in codes:
        data(item)


@mfa_app.command("verify")
def mfa_verify(ctx: typer.Context, code: CodeOpt = None) -> None:
    """Step up: prove the second factor again so policies wanting recent MFA allow you."""
    value = _code(code, "TOTP or recovery code", optional=False)
    assert value is not None
    with state(ctx).client() as client:
        client.step_up(value)
    message("second factor verified")


# -- users ---------------------------------------------------------------------------------


@user_app.command("create")
def user_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME")],
    role: Annotated[list[str] | None, typer.Option("--role", help="Role (repeatable).")] = None,
    password_stdin: PasswordStdin = False,
    as_json: JsonOpt = False,
) -> None:
    """Create person NAME with ROLEs (``admin`` is built in); the password is prompted
    twice, or read from stdin."""
    password = _password(password_stdin, confirm=True)
    with state(ctx).client() as client:
        record = client.create_user(name, password, role or [])
    if as_json:
        print_json(record)
    else:
        message(f"user {record['name']} created with roles {', '.join(record['roles']) or '-'}")


@user_app.command("list")
def user_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    with state(ctx).client() as client:
        people = client.list_users()
    if as_json:
        print_json(people)
        return
    table(None, ["name", "roles", "mfa", "state", "last login"], [_row(u) for u in people])


def _row(user: Mapping[str, Any]) -> tuple[Any, ...]:
    status = "disabled" if user["disabled"] else "locked" if user["locked_until"] else "active"
    return (
        user["name"],
        ", ".join(user["roles"]),
        "yes" if user["mfa"] else "no",
        status,
        user["last_login_at"] or "never",
    )


@user_app.command("show")
def user_show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME")],
    as_json: JsonOpt = False,
) -> None:
    with state(ctx).client() as client:
        user = client.show_user(name)
    if as_json:
        print_json(user)
        return
    for key, value in user.items():
        data(f"{key}: {cell(value)}")


@user_app.command("roles")
def user_roles(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME")],
    role: Annotated[list[str] | None, typer.Option("--role", help="Role (repeatable).")] = None,
) -> None:
    """Replace the roles of NAME (none: no access)."""
    with state(ctx).client() as client:
        user = client.set_user_roles(name, role or [])
    message(f"user {user['name']} now has roles {', '.join(user['roles']) or '-'}")


def _action(ctx: typer.Context, name: str, action: str, done: str) -> None:
    with state(ctx).client() as client:
        client.user_action(name, action)
    message(f"user {name} {done}")


@user_app.command("unlock")
def user_unlock(ctx: typer.Context, name: Annotated[str, typer.Argument(metavar="NAME")]) -> None:
    """Clear a lockout after failed logins."""
    _action(ctx, name, "unlock", "unlocked")


@user_app.command("disable")
def user_disable(ctx: typer.Context, name: Annotated[str, typer.Argument(metavar="NAME")]) -> None:
    """Refuse NAME's logins and end their sessions."""
    _action(ctx, name, "disable", "disabled; their sessions are revoked")


@user_app.command("enable")
def user_enable(ctx: typer.Context, name: Annotated[str, typer.Argument(metavar="NAME")]) -> None:
    _action(ctx, name, "enable", "enabled")


@user_app.command("delete")
def user_delete(
    ctx: typer.Context, name: Annotated[str, typer.Argument(metavar="NAME")], yes: YesOpt = False
) -> None:
    """Delete NAME with their sessions and recovery codes. Asks first unless --yes."""
    confirm(yes, f"Delete user {name} and end their sessions?")
    with state(ctx).client() as client:
        client.delete_user(name)
    message(f"user {name} deleted")


@user_app.command("reset-mfa")
def user_reset_mfa(
    ctx: typer.Context, name: Annotated[str, typer.Argument(metavar="NAME")], yes: YesOpt = False
) -> None:
    """Remove NAME's TOTP and recovery codes (lost device); they enrol again. Asks first
    unless --yes."""
    confirm(yes, f"Remove the second factor of {name}?")
    with state(ctx).client() as client:
        client.reset_user_mfa(name)
    message(f"second factor of {name} removed")


@user_app.command("sessions")
def user_sessions(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME")],
    revoke: Annotated[
        str | None, typer.Option("--revoke", help="Revoke this session id ('all': every one).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List NAME's live sessions, or revoke one or all."""
    with state(ctx).client() as client:
        if revoke is not None:
            client.revoke_user_sessions(name, None if revoke == "all" else revoke)
            message(f"revoked {'every session' if revoke == 'all' else revoke} of {name}")
            return
        found = client.user_sessions(name)
    if as_json:
        print_json(found)
        return
    rows = [
        (s["id"], s["source"], s["created_at"], s["last_seen_at"], s["expires_at"], s["mfa_at"])
        for s in found
    ]
    table(None, ["id", "from", "created", "last seen", "expires", "mfa"], rows)


# -- roles ---------------------------------------------------------------------------------


@role_app.command("write")
def role_write(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME")],
    policy: Annotated[list[str], typer.Option("--policy", help="Policy (repeatable).")],
) -> None:
    """Create or replace role NAME holding POLICYs (which must exist)."""
    with state(ctx).client() as client:
        role = client.write_role(name, policy)
    message(f"role {role['name']} holds {', '.join(role['policies'])}")


@role_app.command("list")
def role_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    with state(ctx).client() as client:
        found = client.list_roles()
    if as_json:
        print_json(found)
        return
    table(
        None,
        ["name", "policies", "users"],
        [(r["name"], ", ".join(r["policies"]), r["users"]) for r in found],
    )


@role_app.command("delete")
def role_delete(
    ctx: typer.Context, name: Annotated[str, typer.Argument(metavar="NAME")], yes: YesOpt = False
) -> None:
    """Delete a role nobody holds."""
    confirm(yes, f"Delete role {name}?")
    with state(ctx).client() as client:
        client.delete_role(name)
    message(f"role {name} deleted")
