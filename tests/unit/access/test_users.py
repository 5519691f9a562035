"""People at the service level (SQLite file): names, login cost, lockout, sessions'
batched last use and idle expiry across processes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pyotp
import pytest
from argon2 import PasswordHasher
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from keysafe.access.login import LOGIN_FAILED, Attempt, LoginFailed
from keysafe.access.people import People, build_people
from keysafe.access.policy_store import PolicyStore
from keysafe.access.sessions import SessionStore, actor_of
from keysafe.access.users import normalise_name
from keysafe.audit.service import AuditLog
from keysafe.crypto.keyring import Keyring
from keysafe.errors import AccountLocked, Unauthenticated
from keysafe.store.engine import make_engine, write_txn
from keysafe.store.migrate import upgrade
from keysafe.store.tables_users import login_name_failures, sessions

PASSWORD = "a long enough passphrase"
AT = Attempt("127.0.0.1", "unit")


class Clock:
    def __init__(self) -> None:
        self.us = time.time_ns() // 1000

    def now_us(self) -> int:
        return self.us

    def advance(self, seconds: float) -> None:
        self.us += int(seconds * 1_000_000)


class CountingHasher(PasswordHasher):
    """Cheap argon2 that counts verifications: the cost of a login, made visible."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=64, parallelism=1)
        self.verifications = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self.verifications += 1
        return super().verify(hash, password)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{tmp_path / 'u.db'}")
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def world(engine: Engine) -> tuple[People, Clock, CountingHasher, Engine]:
    clock = Clock()
    keyring = Keyring.new()
    hasher = CountingHasher()
    audit = AuditLog(engine, key=lambda: keyring.audit_hmac_key)
    people = build_people(
        engine,
        lambda: keyring,
        PolicyStore(engine, clock),
        audit,
        clock,
        lockout_threshold=3,
        cache_seconds=0,
        hasher=lambda: hasher,
    )
    return people, clock, hasher, engine


def _user(people: People, engine: Engine, name: str = "alice") -> None:
    hashed = people.accounts.new_password_hash(name, PASSWORD)
    with write_txn(engine) as conn:
        people.accounts.create(conn, name, hashed, [], "test", None)


@given(st.text(max_size=80))
def test_normalised_names_are_canonical_and_fit_the_audit_actor(text: str) -> None:
    folded = normalise_name(text)
    if folded is not None:
        assert folded == folded.lower() == normalise_name(folded)
        assert len(actor_of(folded)) <= 64
        assert folded.isascii()


@settings(max_examples=25, deadline=None)
@given(st.text(min_size=1, max_size=40).filter(lambda p: p != PASSWORD))
def test_no_wrong_password_logs_in_and_every_refusal_reads_the_same(
    tmp_path_factory: pytest.TempPathFactory, password: str
) -> None:
    eng = make_engine(f"sqlite:///{tmp_path_factory.mktemp('h') / 'u.db'}")
    upgrade(eng)
    try:
        keyring, clock = Keyring.new(), Clock()
        people = build_people(
            eng,
            lambda: keyring,
            PolicyStore(eng, clock),
            AuditLog(eng, key=lambda: keyring.audit_hmac_key),
            clock,
            lockout_threshold=1000,
            hasher=CountingHasher,
        )
        _user(people, eng)
        for name in ("alice", "nobody"):
            with pytest.raises(LoginFailed) as caught:
                people.login.login(name, password, None, AT)
            assert caught.value.detail == LOGIN_FAILED
            assert caught.value.extra == {}
    finally:
        eng.dispose()


def test_unknown_user_costs_one_argon2_verification_like_a_wrong_password(
    world: tuple[People, Clock, CountingHasher, Engine],
) -> None:
    people, _, hasher, engine = world
    _user(people, engine)
    costs = []
    for name, password in (("alice", "wrong wrong wrong"), ("nobody", "wrong wrong wrong")):
        before = hasher.verifications
        with pytest.raises(LoginFailed):
            people.login.login(name, password, None, AT)
        costs.append(hasher.verifications - before)
    assert costs == [1, 1]


def test_a_locked_name_is_refused_before_any_hashing(
    world: tuple[People, Clock, CountingHasher, Engine],
) -> None:
    people, clock, hasher, engine = world
    _user(people, engine)
    for name in ("alice", "ghost"):
        for _ in range(3):
            with pytest.raises(LoginFailed):
                people.login.login(name, "wrong wrong wrong", None, AT)
        before = hasher.verifications
        with pytest.raises(AccountLocked) as caught:
            people.login.login(name, PASSWORD, None, AT)
        assert hasher.verifications == before
        assert 0 < caught.value.retry_after <= 15 * 60
    clock.advance(15 * 60 + 1)
    assert people.login.login("alice", PASSWORD, None, AT).token.startswith("ks_sess_")


def _statuses(people: People, name: str, attempts: int) -> list[int]:
    out = []
    for _ in range(attempts):
        try:
            people.login.login(name, "wrong wrong wrong", None, AT)
        except AccountLocked:
            out.append(429)
        except LoginFailed:
            out.append(401)
    return out


def test_unknown_names_lock_like_real_ones_across_processes(
    world: tuple[People, Clock, CountingHasher, Engine],
) -> None:
    """Two login services on one database (two workers), attempts alternating between
    them: a made-up name answers exactly as a real one does."""
    people, clock, hasher, engine = world
    keyring = people.login._keyring()  # the same vault: the same keyring
    other = build_people(
        engine,
        lambda: keyring,
        PolicyStore(engine, clock),
        AuditLog(engine, key=lambda: keyring.audit_hmac_key),
        clock,
        lockout_threshold=3,
        cache_seconds=0,
        hasher=lambda: hasher,
    )
    _user(people, engine)
    for name in ("alice", "ghost"):
        seen = [_statuses(p, name, 1)[0] for p in (people, other, people, other, people)]
        assert seen == [401, 401, 401, 429, 429], name
    clock.advance(15 * 60 + 1)
    assert _statuses(other, "ghost", 1) == [401]
    other.login.forget_unknown("ghost")
    assert _statuses(people, "ghost", 3) == [401, 401, 401]
    assert _statuses(other, "ghost", 1) == [429]


def test_unknown_names_are_forgotten_after_a_month(
    world: tuple[People, Clock, CountingHasher, Engine],
) -> None:
    people, clock, _, engine = world
    _statuses(people, "ghost", 2)
    clock.advance(31 * 24 * 3600)
    _statuses(people, "someone-else", 1)
    with engine.connect() as conn:
        assert conn.execute(select(login_name_failures.c.failed_count)).scalars().all() == [1]


def test_replayed_totp_code_is_refused_at_the_service(
    world: tuple[People, Clock, CountingHasher, Engine],
) -> None:
    people, clock, _, engine = world
    _user(people, engine)
    result = people.login.login("alice", PASSWORD, None, AT)
    record = people.sessions.lookup(result.token)
    uri = people.login.begin_totp(record, PASSWORD, AT)["otpauth_uri"]
    device = pyotp.parse_uri(uri)
    assert isinstance(device, pyotp.TOTP)
    people.login.confirm_totp(record, device.at(clock.us / 1e6), AT)
    clock.advance(30)
    code = device.at(clock.us / 1e6)
    assert people.login.login("alice", PASSWORD, code, AT).mfa
    with pytest.raises(LoginFailed) as caught:
        people.login.login("alice", PASSWORD, code, AT)
    assert caught.value.reason == "TOTP code replayed"


def test_last_use_is_written_in_batches_not_per_request(
    world: tuple[People, Clock, CountingHasher, Engine],
) -> None:
    people, clock, _, engine = world
    _user(people, engine)
    token = people.login.login("alice", PASSWORD, None, AT).token

    def stored() -> int:
        with engine.connect() as conn:
            return int(conn.execute(select(sessions.c.last_seen_at)).scalar_one())

    created = stored()
    for _ in range(50):  # 50 requests within the first 50 seconds: no write at all
        clock.advance(1)
        people.sessions.verify(token, "127.0.0.1")
    assert people.sessions.flush_touches() == 0
    assert stored() == created
    clock.advance(20)  # past the touch interval: one write for the batch
    people.sessions.verify(token, "127.0.0.1")
    people.sessions.verify(token, "127.0.0.1")
    assert people.sessions.flush_touches() == 1
    assert stored() == clock.us


def test_idle_expiry_across_processes_is_never_late_and_honours_flushed_use(
    world: tuple[People, Clock, CountingHasher, Engine],
) -> None:
    people, clock, _, engine = world
    _user(people, engine)
    token = people.login.login("alice", PASSWORD, None, AT).token
    process_a = people.sessions
    process_b = SessionStore(
        engine,
        lambda: people.sessions._token_key(),
        clock,
        idle_seconds=30 * 60,
        max_seconds=12 * 3600,
        cache_seconds=0,
    )
    # Process A serves the session every 10 minutes and flushes as the poll loop does.
    for _ in range(6):
        clock.advance(10 * 60)
        process_a.verify(token, "127.0.0.1")
        process_a.flush_touches()
    # An hour after login, B still sees a session used 0 s ago.
    assert process_b.verify(token, "127.0.0.1").token_id == "user:alice"
    # Unflushed use on A is invisible to B: B may expire the session early, never late.
    clock.advance(20 * 60)
    process_a.verify(token, "127.0.0.1")  # queued, not flushed
    clock.advance(11 * 60)
    with pytest.raises(Unauthenticated):
        process_b.verify(token, "127.0.0.1")
    process_a.verify(token, "127.0.0.1")  # A knows the true last use: alive
    process_a.flush_touches()
    assert process_b.verify(token, "127.0.0.1").kind == "user"
    clock.advance(30 * 60 + 1)
    for process in (process_a, process_b):
        with pytest.raises(Unauthenticated):
            process.verify(token, "127.0.0.1")
