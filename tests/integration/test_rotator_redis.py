"""The redis rotator, step by step, against the real Redis of this machine.

Each test creates its own ACL user ``ks_rot_<hex>`` and deletes it afterwards. Redis
checks ACL users' passwords for real, so every login below proves something. Skips when
Redis is unreachable, except in CI (CI=true), where it fails.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable, Iterator, Mapping
from urllib.parse import urlsplit

import pytest
import redis

from keysafe.errors import InvalidInput, NotFound, RotationFailed
from keysafe.rotation.rotators.base import RotationContext
from keysafe.rotation.rotators.redis import RedisRotator
from keysafe.rotation.targets import Target

REDIS_URL = os.environ.get("KEYSAFE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ADMIN_PATH = "sys-test/redis-admin"
Ctx = Callable[..., RotationContext]


def approve_all(target: Target, login: str) -> None:
    """These tests are about the rotator's steps: every target is approved here
    (test_rotation_targets.py tests the approval itself)."""


@pytest.fixture(scope="module")
def admin() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis is required in CI but unreachable: {exc}")
        pytest.skip(f"Redis unreachable: {exc}")
    yield client
    client.close()


@pytest.fixture
def user(admin: redis.Redis) -> Iterator[str]:
    name = f"ks_rot_{secrets.token_hex(4)}"
    # A user with a password nobody knows, allowed PING only: the rotation adds its own.
    admin.execute_command(  # type: ignore[no-untyped-call]
        "ACL", "SETUSER", name, "on", ">" + secrets.token_hex(16), "+ping"
    )
    yield name
    admin.acl_deluser(name)


def make_ctx(user: str, admin_url: str = REDIS_URL, **options: str) -> Ctx:
    def read_secret(path: str) -> str:
        if path != ADMIN_PATH:
            raise NotFound(f"no secret at {path}")
        return admin_url

    opts: dict[str, str] = {"target-secret": ADMIN_PATH, "user": user, **options}

    def ctx(current: str | None = None, step: str = "apply") -> RotationContext:
        return RotationContext(
            approve=approve_all,
            path="cache/app/REDIS_URL",
            options=opts,
            current=current,
            read_secret=read_secret,
            extra={"run_id": "1", "step": step},
        )

    return ctx


def can_auth(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        return bool(client.ping())
    except redis.AuthenticationError:
        return False
    finally:
        client.close()


def rotate(rotator: RedisRotator, ctx: RotationContext) -> str:
    new = rotator.generate(ctx)
    rotator.apply(ctx, new)
    rotator.verify(ctx, new)
    return new


def password_hashes(admin: redis.Redis, user: str) -> list[str]:
    info = admin.acl_getuser(user)
    return [p.decode() if isinstance(p, bytes) else str(p) for p in info["passwords"]]


def test_both_passwords_work_until_retire(admin: redis.Redis, user: str) -> None:
    rotator = RedisRotator()
    ctx = make_ctx(user)
    v1 = rotate(rotator, ctx())
    assert urlsplit(v1).username == user
    assert can_auth(v1)

    v2 = rotate(rotator, ctx(v1))
    assert can_auth(v1), "the previous password must keep working until retire"
    assert can_auth(v2)

    rotator.retire(ctx(v2), v1)
    assert not can_auth(v1)
    assert can_auth(v2)
    rotator.retire(ctx(v2), v1)  # idempotent: already gone is fine
    # The user's state is untouched: still enabled, still allowed only what it was.
    info = admin.acl_getuser(user)
    assert "on" in [f.decode() if isinstance(f, bytes) else f for f in info["flags"]]


def test_passwords_reach_redis_only_as_hashes(admin: redis.Redis, user: str) -> None:
    rotator = RedisRotator()
    ctx = make_ctx(user)()
    new = rotator.generate(ctx)
    rotator.apply(ctx, new)
    rotator.apply(ctx, new)  # idempotent
    password = urlsplit(new).password or ""
    digest = hashlib.sha256(password.encode()).hexdigest()
    assert password_hashes(admin, user).count(digest) == 1


def test_rollback_adds_the_current_password_back(admin: redis.Redis, user: str) -> None:
    rotator = RedisRotator()
    ctx = make_ctx(user)
    v1 = rotate(rotator, ctx())
    digest = hashlib.sha256((urlsplit(v1).password or "").encode()).hexdigest()
    admin.execute_command("ACL", "SETUSER", user, "!" + digest)  # type: ignore[no-untyped-call]
    assert not can_auth(v1)
    rotator.apply(ctx(v1, step="rollback"), v1)
    assert can_auth(v1)
    rotator.apply(ctx("hand-set", step="rollback"), "hand-set")  # not ours: no change
    assert password_hashes(admin, user).count(digest) == 1


def test_retire_never_removes_the_current_password(user: str) -> None:
    rotator = RedisRotator()
    ctx = make_ctx(user)
    v1 = rotate(rotator, ctx())
    rotator.retire(ctx(v1), v1)
    assert can_auth(v1)


def test_verify_refuses_a_wrong_password_without_showing_it(user: str) -> None:
    rotator = RedisRotator()
    ctx = make_ctx(user)()
    new = rotator.generate(ctx)
    rotator.apply(ctx, new)
    password = urlsplit(new).password or ""
    wrong = new.replace(password, "not-the-password-" + secrets.token_hex(8))
    with pytest.raises(RotationFailed) as info:
        rotator.verify(ctx, wrong)
    assert "failed" in info.value.detail
    assert "not-the-password" not in info.value.detail
    assert password not in info.value.detail


def test_a_missing_user_is_named() -> None:
    ghost = f"ks_rot_{secrets.token_hex(4)}"
    rotator = RedisRotator()
    ctx = make_ctx(ghost)()
    with pytest.raises(RotationFailed, match=f"ACL user {ghost} does not exist"):
        rotator.apply(ctx, rotator.generate(ctx))


@pytest.mark.parametrize(
    ("admin_url", "expected"),
    [
        ("redis://nobody:wrong-admin-password@127.0.0.1:6379/0", "authentication failed"),
        ("redis://127.0.0.1:1/0", "cannot connect to Redis at 127.0.0.1:1"),
        ("https://example.invalid/", "not a Redis URL"),
    ],
)
def test_a_wrong_admin_secret_is_refused_by_name(user: str, admin_url: str, expected: str) -> None:
    rotator = RedisRotator()
    new = rotator.generate(make_ctx(user)())
    with pytest.raises(RotationFailed) as info:
        rotator.apply(make_ctx(user, admin_url)(), new)
    assert expected in info.value.detail
    assert "wrong-admin-password" not in info.value.detail


def test_an_admin_without_acl_rights_is_refused(admin: redis.Redis, user: str) -> None:
    weak = f"ks_rot_weak_{secrets.token_hex(4)}"
    password = secrets.token_hex(16)
    admin.execute_command("ACL", "SETUSER", weak, "on", ">" + password, "+ping")  # type: ignore[no-untyped-call]
    try:
        rotator = RedisRotator()
        ctx = make_ctx(user, f"redis://{weak}:{password}@127.0.0.1:6379/0")()
        with pytest.raises(RotationFailed, match="refused") as info:
            rotator.apply(ctx, rotator.generate(ctx))
        assert password not in info.value.detail
    finally:
        admin.acl_deluser(weak)


def test_a_candidate_for_another_user_is_refused(user: str) -> None:
    ctx = make_ctx(user)()
    with pytest.raises(RotationFailed, match="not the one this policy rotates"):
        RedisRotator().apply(ctx, "redis://someone-else:pw@127.0.0.1:6379/0")
    with pytest.raises(RotationFailed, match="not a redis:// URL"):
        RedisRotator().apply(ctx, "hunter2")


GOOD = {"target-secret": ADMIN_PATH, "user": "app"}


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, "needs the option 'target-secret'"),
        ({"target-secret": ADMIN_PATH}, "needs the option 'user'"),
        ({**GOOD, "role": "x"}, "no option 'role'"),
        ({**GOOD, "user": "default"}, "does not rotate the 'default' user"),
        ({**GOOD, "user": "a b"}, "spaces"),
        ({**GOOD, "port": "0"}, "TCP port"),
        ({**GOOD, "db": "zero"}, "database number"),
    ],
)
def test_check_options_refuses(options: Mapping[str, str], expected: str) -> None:
    with pytest.raises(InvalidInput, match=expected):
        RedisRotator().check_options(options)


def test_check_options_accepts() -> None:
    RedisRotator().check_options({**GOOD, "host": "cache.internal", "port": "6380", "db": "2"})
