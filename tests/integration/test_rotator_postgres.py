"""The postgres rotator, step by step, against a real PostgreSQL that checks passwords.

Each test creates its own uniquely named roles and drops them afterwards. The cluster is
the machine's PostgreSQL started privately with scram-sha-256 (see tests/pgauth.py): on
the shared trust-auth server any password logs in, which would prove nothing.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Mapping

import psycopg
import pytest
from psycopg import sql

from keysafe.errors import InvalidInput, NotFound, RotationFailed
from keysafe.rotation.rotators.base import RotationContext
from keysafe.rotation.rotators.postgres import PostgresRotator
from keysafe.rotation.targets import Target
from pgauth import password_postgres

ADMIN_PATH = "sys-test/pg-admin"
Ctx = Callable[..., RotationContext]


def approve_all(target: Target, login: str) -> None:
    """These tests are about the rotator's steps: every target is approved here
    (test_rotation_targets.py tests the approval itself)."""


@pytest.fixture(scope="module")
def admin_url() -> Iterator[str]:
    with password_postgres() as url:
        yield url


@pytest.fixture
def role(admin_url: str) -> Iterator[str]:
    """A fresh login ``ks_rot_<hex>`` and its partner ``<role>_b`` (member of it)."""
    name = f"ks_rot_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(
                sql.Identifier(name + "_b"), sql.Identifier(name)
            )
        )
    yield name
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP ROLE IF EXISTS {}, {}").format(
                sql.Identifier(name + "_b"), sql.Identifier(name)
            )
        )


def make_ctx(admin_url: str, role: str, **options: str) -> Ctx:
    secrets_by_path = {ADMIN_PATH: admin_url}

    def read_secret(path: str) -> str:
        if path not in secrets_by_path:
            raise NotFound(f"no secret at {path}")
        return secrets_by_path[path]

    opts: dict[str, str] = {"target-secret": ADMIN_PATH, "role": role, **options}

    def ctx(current: str | None = None, step: str = "apply", **override: str) -> RotationContext:
        return RotationContext(
            approve=approve_all,
            path="db/app/DATABASE_URL",
            options={**opts, **override},
            current=current,
            read_secret=read_secret,
            extra={"run_id": "1", "step": step},
        )

    return ctx


def user_of(url: str) -> str:
    return str(psycopg.conninfo.conninfo_to_dict(url)["user"])


def can_login(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.OperationalError as exc:
        reason = str(exc)
    assert "password authentication failed" in reason, reason
    return False


def rotate(rotator: PostgresRotator, ctx: RotationContext) -> str:
    new = rotator.generate(ctx)
    rotator.apply(ctx, new)
    rotator.verify(ctx, new)
    return new


def test_alternate_keeps_the_previous_credential_until_retire(admin_url: str, role: str) -> None:
    rotator = PostgresRotator()
    ctx = make_ctx(admin_url, role)
    v1 = rotate(rotator, ctx())
    assert user_of(v1) == role
    assert can_login(v1)

    v2 = rotate(rotator, ctx(v1))
    assert user_of(v2) == role + "_b"
    assert can_login(v1), "the previous credential must keep working until retire"
    assert can_login(v2)

    rotator.retire(ctx(v2), v1)
    assert not can_login(v1)
    assert can_login(v2)
    rotator.retire(ctx(v2), v1)  # idempotent

    v3 = rotate(rotator, ctx(v2))  # back to the first login: its expiry is lifted
    assert user_of(v3) == role
    assert can_login(v3)
    assert can_login(v2)
    # A late retire of v1 (same login as the current v3) must not touch the live login.
    rotator.retire(ctx(v3), v1)
    assert can_login(v3)


def test_rollback_makes_the_current_value_work_again(admin_url: str, role: str) -> None:
    rotator = PostgresRotator()
    ctx = make_ctx(admin_url, role, mode="grace")
    v1 = rotate(rotator, ctx())
    v2 = rotator.generate(ctx(v1))
    rotator.apply(ctx(v1), v2)  # the old password stops here (grace mode)...
    assert not can_login(v1)
    rotator.apply(ctx(v1, step="rollback"), v1)  # ...and verify failed: roll back
    assert can_login(v1)
    assert not can_login(v2)
    # Rolling back to a value set by hand (not ours) changes nothing and does not fail.
    rotator.apply(ctx("hunter2", step="rollback"), "hunter2")
    assert can_login(v1)


def test_a_user_given_pair(admin_url: str, role: str) -> None:
    rotator = PostgresRotator()
    # The pair in the other order: the first rotation uses the named role.
    ctx = make_ctx(admin_url, role + "_b", **{"second-role": role})
    v1 = rotate(rotator, ctx())
    v2 = rotate(rotator, ctx(v1))
    assert (user_of(v1), user_of(v2)) == (role + "_b", role)


def test_grace_mode_stops_the_old_password_for_new_logins_only(admin_url: str, role: str) -> None:
    rotator = PostgresRotator()
    ctx = make_ctx(admin_url, role, mode="grace")
    v1 = rotate(rotator, ctx())
    with psycopg.connect(v1) as open_session:
        v2 = rotate(rotator, ctx(v1))
        assert user_of(v2) == role
        assert not can_login(v1)
        assert can_login(v2)
        # Sessions opened before the rotation keep working through the grace period.
        assert open_session.execute("SELECT current_user::text").fetchone() == (role,)
    rotator.retire(ctx(v2), v1)
    assert can_login(v2)


def test_apply_is_idempotent(admin_url: str, role: str) -> None:
    rotator = PostgresRotator()
    ctx = make_ctx(admin_url, role)()
    new = rotator.generate(ctx)
    rotator.apply(ctx, new)
    rotator.apply(ctx, new)
    rotator.verify(ctx, new)


def test_the_value_is_a_url_with_the_admin_address(admin_url: str, role: str) -> None:
    rotator = PostgresRotator()
    new = rotator.generate(make_ctx(admin_url, role, dbname="postgres")())
    info = psycopg.conninfo.conninfo_to_dict(new)
    admin = psycopg.conninfo.conninfo_to_dict(admin_url)
    assert (info["host"], info["port"], info["dbname"]) == (
        admin["host"],
        admin["port"],
        "postgres",
    )
    assert len(str(info["password"])) >= 40


def test_verify_refuses_a_wrong_password_without_showing_it(admin_url: str, role: str) -> None:
    rotator = PostgresRotator()
    ctx = make_ctx(admin_url, role)()
    new = rotator.generate(ctx)
    rotator.apply(ctx, new)
    password = str(psycopg.conninfo.conninfo_to_dict(new)["password"])
    wrong = new.replace(password, "not-the-password-" + secrets.token_hex(8))
    with pytest.raises(RotationFailed) as info:
        rotator.verify(ctx, wrong)
    assert "password authentication failed" in info.value.detail
    assert "not-the-password" not in info.value.detail
    assert password not in info.value.detail


def test_a_role_name_needing_quotes(admin_url: str) -> None:
    name = f'ks_rot_{secrets.token_hex(3)}"x;drop'
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
    try:
        rotator = PostgresRotator()
        ctx = make_ctx(admin_url, name, mode="grace")()
        new = rotate(rotator, ctx)
        assert user_of(new) == name
        assert can_login(new)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def test_a_missing_role_is_named(admin_url: str, role: str) -> None:
    rotator = PostgresRotator()
    ctx = make_ctx(admin_url, role, **{"second-role": role + "_missing"})
    v1 = rotate(rotator, ctx())
    with pytest.raises(RotationFailed, match=f"role {role}_missing does not exist"):
        rotate(rotator, ctx(v1))


def admin_variant(admin_url: str, **change: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(admin_url)
    info.update(change)
    return psycopg.conninfo.make_conninfo(**info)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"password": "wrong-admin-password"}, "password authentication failed"),
        ({"port": "1"}, "cannot connect to PostgreSQL at 127.0.0.1:1"),
        ({"user": "nobody_here"}, "cannot connect"),
    ],
)
def test_a_wrong_admin_secret_is_refused_by_name(
    admin_url: str, role: str, change: dict[str, str], expected: str
) -> None:
    rotator = PostgresRotator()
    bad = admin_variant(admin_url, **change)
    ctx = RotationContext(
        approve=approve_all,
        path="db/app/DATABASE_URL",
        options={"target-secret": ADMIN_PATH, "role": role},
        current=None,
        read_secret=lambda _p: bad,
    )
    new = rotator.generate(make_ctx(admin_url, role)())
    with pytest.raises(RotationFailed) as info:
        rotator.apply(ctx, new)
    assert expected in info.value.detail
    admin_password = str(psycopg.conninfo.conninfo_to_dict(admin_url)["password"])
    assert admin_password not in info.value.detail
    assert "wrong-admin-password" not in info.value.detail


@pytest.mark.parametrize(
    ("secret", "expected"),
    [
        ("not a url at all = =", "not a PostgreSQL URL"),
        ("", "is empty"),
    ],
)
def test_an_unusable_admin_secret(role: str, secret: str, expected: str) -> None:
    ctx = RotationContext(
        approve=approve_all,
        path="db/x",
        options={"target-secret": ADMIN_PATH, "role": role},
        current=None,
        read_secret=lambda _p: secret,
    )
    with pytest.raises(RotationFailed, match=expected):
        PostgresRotator().generate(ctx)


def test_a_missing_admin_secret_is_named(admin_url: str, role: str) -> None:
    ctx = make_ctx(admin_url, role)(**{"target-secret": "sys-test/absent"})
    with pytest.raises(RotationFailed, match="cannot read the admin secret sys-test/absent"):
        PostgresRotator().generate(ctx)


def test_a_candidate_for_another_login_is_refused(admin_url: str, role: str) -> None:
    ctx = make_ctx(admin_url, role)()
    foreign = admin_url  # the admin's own login: never ours to change
    with pytest.raises(RotationFailed, match="not one this policy rotates"):
        PostgresRotator().apply(ctx, foreign)
    with pytest.raises(RotationFailed, match="not a postgresql:// URL"):
        PostgresRotator().apply(ctx, "hunter2")


GOOD = {"target-secret": ADMIN_PATH, "role": "app"}


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, "needs the option 'role'"),
        ({"role": "app"}, "needs the option 'target-secret'"),
        ({**GOOD, "colour": "blue"}, "no option 'colour'"),
        ({**GOOD, "mode": "sometimes"}, "must be one of alternate, grace"),
        ({**GOOD, "mode": "grace", "second-role": "app2"}, "only applies to mode=alternate"),
        ({**GOOD, "second-role": "app"}, "must differ"),
        ({**GOOD, "role": "x" * 64}, "1-63 bytes"),
        ({**GOOD, "role": "two words"}, "spaces"),
        ({**GOOD, "port": "99999"}, "TCP port"),
        ({**GOOD, "port": "abc"}, "TCP port"),
    ],
)
def test_check_options_refuses(options: Mapping[str, str], expected: str) -> None:
    with pytest.raises(InvalidInput, match=expected):
        PostgresRotator().check_options(options)


@pytest.mark.parametrize(
    "options",
    [GOOD, {**GOOD, "mode": "grace"}, {**GOOD, "second-role": "app_green", "port": "6432"}],
)
def test_check_options_accepts(options: Mapping[str, str]) -> None:
    PostgresRotator().check_options(options)
