"""People over the HTTP API (in process, SQLite and PostgreSQL): login, TOTP, recovery
codes, lockout, sessions' idle and absolute lifetimes, step-up MFA, logout."""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from sqlalchemy import Engine, MetaData, select
from vaultkit import Vault

from keysafe.access.people import People, build_people
from keysafe.audit.models import AuditEvent
from keysafe.server.app import create_app, with_fast_paths

pytestmark = pytest.mark.anyio

PASSWORD = "correct horse battery"
READ_TEAM = '[[rule]]\npath = "team/*"\ncapabilities = ["read"]\n'
READ_PROD_MFA = '[[rule]]\npath = "prod/*"\ncapabilities = ["read"]\nmfa_within_minutes = 5\n'


class ManualClock:
    """A clock the test moves; starts at the real time plus ``offset`` seconds."""

    def __init__(self, offset: float = 0.0) -> None:
        self.us = int((time.time() + offset) * 1_000_000)

    def now_us(self) -> int:
        return self.us

    def advance(self, seconds: float) -> None:
        self.us += int(seconds * 1_000_000)

    def set_real(self) -> None:
        self.us = time.time_ns() // 1000

    @property
    def seconds(self) -> float:
        return self.us / 1_000_000


PeopleFactory = Callable[..., ManualClock]


@pytest.fixture
async def api(vault: Vault) -> AsyncIterator[httpx.AsyncClient]:
    app = with_fast_paths(create_app(vault.svc.settings, services=vault.svc))
    transport = httpx.ASGITransport(app=app, client=("10.9.8.7", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client


@pytest.fixture
def people(vault: Vault) -> PeopleFactory:
    """Replace the vault's people services with ones on a manual clock (and settings)."""

    def make(offset: float = 0.0, **settings: Any) -> ManualClock:
        clock = ManualClock(offset)
        svc = vault.svc
        built: People = build_people(
            svc.engine, svc.barrier.keyring, svc.policies, svc.audit, clock, **settings
        )
        svc.users = built
        return clock

    return make


def events(vault: Vault) -> list[AuditEvent]:
    return [chained.event for chained in vault.svc.audit.events(limit=1000)]


def root(vault: Vault) -> dict[str, str]:
    return {"Authorization": f"Bearer {vault.root_token}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def make_user(
    api: httpx.AsyncClient, vault: Vault, name: str, roles: list[str] | None = None
) -> None:
    made = await api.post(
        "/api/v1/users",
        json={"name": name, "password": PASSWORD, "roles": roles or []},
        headers=root(vault),
    )
    assert made.status_code == 200, made.text


async def login(
    api: httpx.AsyncClient, name: str, password: str = PASSWORD, code: str | None = None
) -> httpx.Response:
    return await api.post(
        "/api/v1/auth/login", json={"name": name, "password": password, "code": code}
    )


async def enrol(
    api: httpx.AsyncClient, token: str, clock: ManualClock
) -> tuple[pyotp.TOTP, list[str]]:
    """Enrol TOTP in the session ``token``; returns the authenticator and recovery codes."""
    begun = await api.post("/api/v1/auth/totp", json={"password": PASSWORD}, headers=bearer(token))
    assert begun.status_code == 200, begun.text
    uri = begun.json()["otpauth_uri"]
    secret = urllib.parse.parse_qs(urllib.parse.urlparse(uri).query)["secret"][0]
    device = pyotp.TOTP(secret)
    done = await api.post(
        "/api/v1/auth/totp/confirm",
        json={"code": device.at(clock.seconds)},
        headers=bearer(token),
    )
    assert done.status_code == 200, done.text
    codes: list[str] = done.json()["recovery_codes"]
    assert len(codes) == 10
    return device, codes


async def test_login_gives_a_session_judged_by_the_roles_policies(
    api: httpx.AsyncClient, vault: Vault
) -> None:
    await api.put("/api/v1/policies/team-read", json={"text": READ_TEAM}, headers=root(vault))
    assert (
        await api.put("/api/v1/roles/team", json={"policies": ["team-read"]}, headers=root(vault))
    ).status_code == 200
    # A role naming an unknown policy, and a user with an unknown role, are refused.
    bad = await api.put("/api/v1/roles/x", json={"policies": ["nope"]}, headers=root(vault))
    assert bad.status_code == 400
    bad = await api.post(
        "/api/v1/users",
        json={"name": "eve", "password": PASSWORD, "roles": ["nope"]},
        headers=root(vault),
    )
    assert bad.status_code == 400
    short = await api.post(
        "/api/v1/users", json={"name": "eve", "password": "short"}, headers=root(vault)
    )
    assert short.status_code == 400
    assert "at least 12" in short.json()["detail"]
    await make_user(api, vault, "Bob", ["team"])
    for path, value in (("team/A", "a"), ("other/B", "b")):
        await api.put(f"/api/v1/secrets/{path}", json={"value": value}, headers=root(vault))

    done = await login(api, "bob")
    assert done.status_code == 200, done.text
    token = done.json()["token"]
    assert token.startswith("ks_sess_")
    assert done.json()["mfa"] is False
    assert (await api.get("/api/v1/secrets/team/A", headers=bearer(token))).json()["value"] == "a"
    assert (await api.get("/api/v1/secrets/other/B", headers=bearer(token))).status_code == 403
    assert (await api.get("/api/v1/users", headers=bearer(token))).status_code == 403
    me = (await api.get("/api/v1/auth/self", headers=bearer(token))).json()
    assert me["name"] == "bob"
    assert me["roles"] == ["team"]
    assert me["actor"] == "user:bob"
    assert me["policies"] == ["team-read"]
    # The generic "who am I" of tokens and keys describes a session too.
    described = (await api.get("/api/v1/tokens/self", headers=bearer(token))).json()
    assert described["id"] == "user:bob"
    assert described["policies"] == ["team-read"]
    # The session reaches the audit trail under the person's name.
    actors = {e.actor for e in events(vault)}
    assert "user:bob" in actors


async def test_a_reported_leaked_session_is_revoked(api: httpx.AsyncClient, vault: Vault) -> None:
    await make_user(api, vault, "leaky")
    token = (await login(api, "leaky")).json()["token"]
    assert (await api.get("/api/v1/auth/self", headers=bearer(token))).status_code == 200
    report = {"credentials": [{"credential": token, "location": "ci.log:12"}]}
    results = (await api.post("/api/v1/leaks", json=report)).json()["results"]
    assert results[0]["status"] == "revoked"
    assert results[0]["session_id"].startswith("ses_")
    assert (await api.get("/api/v1/auth/self", headers=bearer(token))).status_code == 401
    again = (await api.post("/api/v1/leaks", json=report)).json()["results"]
    assert again[0]["status"] == "already_revoked"
    revoked = [e for e in events(vault) if e.operation == "session:revoke-leaked"]
    assert len(revoked) == 1
    assert token not in revoked[0].detail
    assert "ci.log:12" in revoked[0].detail


async def test_unknown_user_and_wrong_password_get_the_same_answer(
    api: httpx.AsyncClient, vault: Vault
) -> None:
    await make_user(api, vault, "carol")
    wrong = await login(api, "carol", "not the password at all")
    unknown = await login(api, "nobody-here", "not the password at all")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.headers.get("www-authenticate") == unknown.headers.get("www-authenticate")
    logins = [e for e in events(vault) if e.operation == "auth:login"]
    assert [(e.path, e.outcome) for e in logins] == [
        ("user/carol", "denied"),
        ("user/nobody-here", "denied"),
    ]
    assert "wrong password" in logins[0].detail
    assert "unknown user" in logins[1].detail
    text = repr(events(vault))
    assert "not the password" not in text
    assert PASSWORD not in text


async def test_totp_is_required_once_enrolled_and_codes_work_once(
    api: httpx.AsyncClient, vault: Vault, people: PeopleFactory
) -> None:
    clock = people()
    await make_user(api, vault, "dave")
    token = (await login(api, "dave")).json()["token"]
    # Enrolment needs the password again: a stolen session alone cannot bind a device.
    refused = await api.post(
        "/api/v1/auth/totp", json={"password": "a wrong password!"}, headers=bearer(token)
    )
    assert refused.status_code == 401
    device, codes = await enrol(api, token, clock)

    no_code = await login(api, "dave")
    wrong_code = await login(
        api, "dave", code="000000" if device.at(clock.seconds) != "000000" else "111111"
    )
    unknown = await login(api, "no-such-user", code="123456")
    assert no_code.status_code == wrong_code.status_code == 401
    assert no_code.json() == wrong_code.json() == unknown.json()

    clock.advance(30)  # the enrolment code's step is used up: the next one
    code = device.at(clock.seconds)
    ok = await login(api, "dave", code=code)
    assert ok.status_code == 200
    assert ok.json()["mfa"] is True
    replay = await login(api, "dave", code=code)
    assert replay.status_code == 401
    replayed = [e for e in events(vault) if e.operation == "auth:login"]
    assert replayed[-1].detail.startswith("TOTP code replayed")
    assert code not in repr(replayed)

    first = await login(api, "dave", code=codes[0].upper())  # case and dashes do not matter
    assert first.status_code == 200
    again = await login(api, "dave", code=codes[0])
    assert again.status_code == 401
    assert (await login(api, "dave", code=codes[1])).status_code == 200


async def test_secrets_and_tokens_are_not_stored_in_clear(
    api: httpx.AsyncClient, vault: Vault, people: PeopleFactory, engine: Engine, db_url: str
) -> None:
    clock = people()
    await make_user(api, vault, "erin")
    token = (await login(api, "erin")).json()["token"]
    begun = await api.post("/api/v1/auth/totp", json={"password": PASSWORD}, headers=bearer(token))
    uri = begun.json()["otpauth_uri"]
    secret = urllib.parse.parse_qs(urllib.parse.urlparse(uri).query)["secret"][0]
    done = await api.post(
        "/api/v1/auth/totp/confirm",
        json={"code": pyotp.TOTP(secret).at(clock.seconds)},
        headers=bearer(token),
    )
    codes = done.json()["recovery_codes"]
    vault.svc.users.sessions.flush_touches()

    needles = [secret.encode(), token.encode(), PASSWORD.encode()]
    needles += [c.encode() for c in codes] + [c.replace("-", "").encode() for c in codes]
    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        for table in meta.sorted_tables:
            for row in conn.execute(select(table)):
                blob = repr(tuple(row)).encode()
                for cell in row:
                    if isinstance(cell, (bytes, memoryview)):
                        blob += bytes(cell)
                for needle in needles:
                    assert needle not in blob, (table.name, needle)
    if db_url.startswith("sqlite"):
        path = Path(db_url.split("///", 1)[1])
        raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
        assert raw, "the database file is empty?"
        for needle in needles:
            assert needle not in raw
    digest = vault.svc.users.sessions.hash(token)
    with engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT token_hash FROM sessions").scalars().all()
    assert digest in [bytes(s) for s in stored]


async def test_idle_timeout_and_absolute_lifetime(
    api: httpx.AsyncClient, vault: Vault, people: PeopleFactory
) -> None:
    clock = people(idle_minutes=30, max_hours=2, cache_seconds=0)
    await make_user(api, vault, "frank")
    token = (await login(api, "frank")).json()["token"]
    for _ in range(3):  # used every 29 minutes: alive
        clock.advance(29 * 60)
        assert (await api.get("/api/v1/auth/self", headers=bearer(token))).status_code == 200
    clock.advance(31 * 60)  # idle for 31 minutes: gone
    assert (await api.get("/api/v1/auth/self", headers=bearer(token))).status_code == 401

    token = (await login(api, "frank")).json()["token"]
    for _ in range(5):  # 5 x 20 minutes = 100 min, within 2 h
        clock.advance(20 * 60)
        assert (await api.get("/api/v1/auth/self", headers=bearer(token))).status_code == 200
    clock.advance(20 * 60 + 1)  # past the absolute lifetime, however busy
    gone = await api.get("/api/v1/auth/self", headers=bearer(token))
    assert gone.status_code == 401
    assert gone.json()["code"] == "unauthenticated"


async def test_lockout_after_threshold_then_admin_unlock_and_delay(
    api: httpx.AsyncClient, vault: Vault, people: PeopleFactory
) -> None:
    clock = people(lockout_threshold=3, lockout_minutes=15)
    await make_user(api, vault, "gina")
    for name in ("gina", "ghost"):  # a known and an unknown name lock the same way
        for _ in range(3):
            assert (await login(api, name, "wrong password here")).status_code == 401
        locked = await login(api, name)  # even the right password
        assert locked.status_code == 429, locked.text
        assert locked.json()["code"] == "account_locked"
        assert 1 <= int(locked.headers["retry-after"]) <= 15 * 60
    ops = [e for e in events(vault) if e.operation == "auth:login"]
    assert sum(e.detail == "account locked" for e in ops) == 2

    assert (await api.post("/api/v1/users/gina/unlock", headers=root(vault))).status_code == 204
    assert (await login(api, "gina")).status_code == 200

    for _ in range(3):
        await login(api, "gina", "wrong password here")
    assert (await login(api, "gina")).status_code == 429
    clock.advance(15 * 60 + 1)
    assert (await login(api, "gina")).status_code == 200
    shown = (await api.get("/api/v1/users/gina", headers=root(vault))).json()
    assert shown["locked_until"] is None
    assert shown["failed_logins"] == 0


async def test_logout_and_admin_revocation_end_sessions(
    api: httpx.AsyncClient, vault: Vault
) -> None:
    await make_user(api, vault, "hank")
    one = (await login(api, "hank")).json()
    two = (await login(api, "hank")).json()
    assert (await api.post("/api/v1/auth/logout", headers=bearer(one["token"]))).status_code == 204
    assert (await api.get("/api/v1/auth/self", headers=bearer(one["token"]))).status_code == 401
    listed = (await api.get("/api/v1/users/hank/sessions", headers=root(vault))).json()
    assert [s["id"] for s in listed["sessions"]] == [two["session"]["id"]]
    assert (
        await api.delete(f"/api/v1/users/hank/sessions/{two['session']['id']}", headers=root(vault))
    ).status_code == 204
    assert (await api.get("/api/v1/auth/self", headers=bearer(two["token"]))).status_code == 401
    # Disabling a user ends their sessions and refuses new logins (same 401).
    three = (await login(api, "hank")).json()
    assert (await api.post("/api/v1/users/hank/disable", headers=root(vault))).status_code == 200
    assert (await api.get("/api/v1/auth/self", headers=bearer(three["token"]))).status_code == 401
    assert (await login(api, "hank")).status_code == 401
    # Only a session can log out.
    assert (await api.post("/api/v1/auth/logout", headers=root(vault))).status_code == 400


async def test_step_up_mfa_grants_a_policy_that_wants_recent_mfa(
    api: httpx.AsyncClient, vault: Vault, people: PeopleFactory
) -> None:
    # The people services run an hour in the past: the login's MFA is an hour old for
    # the authorizer (real clock), until the person steps up "now".
    clock = people(offset=-3600, idle_minutes=180)
    await api.put("/api/v1/policies/prod-mfa", json={"text": READ_PROD_MFA}, headers=root(vault))
    await api.put("/api/v1/roles/prod", json={"policies": ["prod-mfa"]}, headers=root(vault))
    await api.put("/api/v1/secrets/prod/DB", json={"value": "p"}, headers=root(vault))
    await make_user(api, vault, "ivy", ["prod"])
    token = (await login(api, "ivy")).json()["token"]
    # Password only: no MFA in this session.
    refused = await api.get("/api/v1/secrets/prod/DB", headers=bearer(token))
    assert refused.status_code == 403
    assert refused.json()["code"] == "mfa_required"
    device, _ = await enrol(api, token, clock)  # confirming proves a factor an hour ago
    clock.advance(30)
    token = (await login(api, "ivy", code=device.at(clock.seconds))).json()["token"]
    stale = await api.get("/api/v1/secrets/prod/DB", headers=bearer(token))
    assert stale.status_code == 403
    assert stale.json()["code"] == "mfa_required"

    clock.set_real()
    wrong = await api.post("/api/v1/auth/mfa", json={"code": "12345x"}, headers=bearer(token))
    assert wrong.status_code == 401
    stepped = await api.post(
        "/api/v1/auth/mfa", json={"code": device.at(clock.seconds)}, headers=bearer(token)
    )
    assert stepped.status_code == 200, stepped.text
    ok = await api.get("/api/v1/secrets/prod/DB", headers=bearer(token))
    assert ok.status_code == 200
    assert ok.json()["value"] == "p"


async def test_builtin_admin_role_on_a_fresh_vault(api: httpx.AsyncClient, vault: Vault) -> None:
    await make_user(api, vault, "root-person", ["admin"])
    roles = (await api.get("/api/v1/roles", headers=root(vault))).json()["roles"]
    assert [(r["name"], r["policies"], r["users"]) for r in roles] == [("admin", ["admin"], 1)]
    token = (await login(api, "root-person")).json()["token"]
    # The admin person administers people; what a role grants is judged by capability,
    # not by policy name: every capability on ``**`` holds what team-read grants.
    await api.put("/api/v1/policies/team-read", json={"text": READ_TEAM}, headers=root(vault))
    await api.put("/api/v1/roles/team", json={"policies": ["team-read"]}, headers=root(vault))
    made = await api.post(
        "/api/v1/users",
        json={"name": "kim", "password": PASSWORD, "roles": ["team"]},
        headers=bearer(token),
    )
    assert made.status_code == 200, made.text
    made = await api.post(
        "/api/v1/users",
        json={"name": "jo", "password": PASSWORD, "roles": ["admin"]},
        headers=bearer(token),
    )
    assert made.status_code == 200, made.text
    dup = await api.post(
        "/api/v1/users", json={"name": "JO", "password": PASSWORD}, headers=root(vault)
    )
    assert dup.status_code == 409
    assert (await api.delete("/api/v1/users/jo", headers=bearer(token))).status_code == 204
    assert (await api.get("/api/v1/users/jo", headers=root(vault))).status_code == 404


async def test_failed_logins_are_throttled_per_source_address(
    api: httpx.AsyncClient, vault: Vault
) -> None:
    await make_user(api, vault, "kim")
    limit = vault.svc.throttle.limit
    answers = [
        (await login(api, f"spray-{i}", "wrong password here")).status_code
        for i in range(limit + 1)
    ]
    assert answers == [401] * limit + [429]  # exactly the limit answered 401
    # The address is cooling down: even the right password of a real user is refused.
    blocked = await login(api, "kim")
    assert blocked.status_code == 429
    assert blocked.json()["code"] == "rate_limited"
    assert int(blocked.headers["retry-after"]) >= 1
    assert any(e.operation == "auth:throttle" for e in events(vault))
