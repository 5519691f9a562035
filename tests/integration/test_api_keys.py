"""Service API keys on a real database: issue, verify, roll with grace, suspend and
resume, revoke, limits."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, insert, select

from keysafe.access.apikeys import KeyService
from keysafe.crypto import keyformat
from keysafe.crypto.envelope import generate_key
from keysafe.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated
from keysafe.store.engine import write_txn
from keysafe.store.tables import api_keys, policies


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000 * 1_000_000

    def now_us(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1_000_000)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def token_key() -> bytes:
    return generate_key()


@pytest.fixture
def keys(engine: Engine, clock: FakeClock, token_key: bytes) -> Iterator[KeyService]:
    service = KeyService(engine, lambda: token_key, clock, cache_seconds=0.0)
    with write_txn(engine) as conn:
        for name in ("payments-read", "payments-write"):
            conn.execute(
                insert(policies).values(
                    name=name, text="", created_at=0, updated_at=0, updated_by="test"
                )
            )
        service.create_service(
            conn, "billing-worker", ["payments-read"], "worker", "tok_root", holder=None
        )
    yield service
    service.close()


def _create(keys: KeyService, **overrides: object) -> tuple[str, str]:
    args: dict[str, object] = {
        "service": "billing-worker",
        "policy_names": None,
        "cidrs": [],
        "expires_in_seconds": None,
        "rate_limit": "600/min",
        "description": "prod worker",
        "creator": "tok_root",
        "holder": None,
    }
    args.update(overrides)
    with keys.write_txn() as conn:
        issued = keys.create(conn, **args)  # type: ignore[arg-type]
    return issued.key, issued.record["id"]


def test_issue_and_verify(keys: KeyService, engine: Engine) -> None:
    key, key_id = _create(keys)
    assert keyformat.parse(key) == "live"
    principal = keys.verify(key, "10.1.2.3")
    assert principal.token_id == key_id
    assert principal.policies == ("payments-read",)
    with engine.connect() as conn:
        stored = conn.execute(select(api_keys)).one()
    assert key.encode() not in bytes(stored.key_hash)
    assert key not in str(tuple(stored))
    shown = keys.show(key_id)
    assert shown["prefix"] == key[:12]
    assert "key_hash" not in shown
    assert shown["use_count"] == 1


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "ks_live_short",
        "ks_tok_" + "A" * 38,
        "ks_live_" + "A" * 38,  # right shape, bad checksum
        keyformat.generate("live"),  # well formed, never issued
    ],
)
def test_malformed_or_unknown_keys_get_one_answer(keys: KeyService, bad: str) -> None:
    with pytest.raises(Unauthenticated) as info:
        keys.verify(bad, "10.0.0.1")
    assert str(info.value) == "missing, malformed, expired or revoked credential"


def test_rolled_key_works_during_grace_and_fails_one_second_after(
    keys: KeyService, clock: FakeClock
) -> None:
    old, old_id = _create(keys)
    with keys.write_txn() as conn:
        new = keys.roll(conn, old_id, 24 * 3600, "tok_root", holder=None).key
    clock.advance(24 * 3600)
    assert keys.verify(old, "10.0.0.1").token_id == old_id
    assert keys.verify(new, "10.0.0.1")
    clock.advance(1)
    with pytest.raises(Unauthenticated):
        keys.verify(old, "10.0.0.1")
    assert keys.verify(new, "10.0.0.1")
    with keys.write_txn() as conn, pytest.raises(InvalidInput, match="already rolled"):
        keys.roll(conn, old_id, 60, "tok_root", holder=None)


def test_revoked_and_expired_keys_fail(keys: KeyService, clock: FakeClock) -> None:
    key, key_id = _create(keys, expires_in_seconds=3600)
    with keys.write_txn() as conn:
        keys.revoke(conn, key_id)
    with pytest.raises(Unauthenticated):
        keys.verify(key, "10.0.0.1")
    other, _ = _create(keys, expires_in_seconds=3600)
    clock.advance(3600)
    with pytest.raises(Unauthenticated):
        keys.verify(other, "10.0.0.1")
    with keys.write_txn() as conn, pytest.raises(NotFound):
        keys.revoke(conn, "key_nope")


def test_ip_allowlist_v4_and_v6(keys: KeyService) -> None:
    key, _ = _create(keys, cidrs=["10.0.0.0/8", "2001:db8::/32"])
    assert keys.verify(key, "10.200.3.4")
    assert keys.verify(key, "2001:db8::1")
    for outside in ("192.168.1.1", "2001:db9::1", "not-an-ip"):
        with pytest.raises(Forbidden):
            keys.verify(key, outside)


def test_no_key_outlives_the_maximum_or_holds_more_than_its_service(keys: KeyService) -> None:
    with pytest.raises(InvalidInput, match="at most 365 days"):
        _create(keys, expires_in_seconds=400 * 86400)
    with pytest.raises(Forbidden, match="more than its service"):
        _create(keys, policy_names=["payments-write"])
    with pytest.raises(InvalidInput, match="CIDR"):
        _create(keys, cidrs=["10.0.0.0/33"])
    with pytest.raises(InvalidInput, match="rate"):
        _create(keys, rate_limit="lots")
    with pytest.raises(NotFound):
        _create(keys, service="nobody")
    _, key_id = _create(keys)
    assert keys.show(key_id)["expires_at"] is not None  # default expiry, never forever


def test_unused_keys_are_listed(keys: KeyService, clock: FakeClock) -> None:
    used, used_id = _create(keys)
    _, idle_id = _create(keys)
    clock.advance(31 * 86400)
    keys.verify(used, "10.0.0.1")
    idle = [k["id"] for k in keys.list_keys(unused_for_seconds=30 * 86400)]
    assert idle == [idle_id]
    assert used_id not in idle


def test_unused_keys_are_revoked_by_the_rule(keys: KeyService, clock: FakeClock) -> None:
    used, used_id = _create(keys)
    idle, idle_id = _create(keys)
    clock.advance(29 * 86400)
    keys.verify(used, "10.0.0.1")
    clock.advance(2 * 86400)
    keys.flush_usage()
    with keys.write_txn() as conn:
        assert keys.revoke_unused(conn, 30) == [idle_id]
    with pytest.raises(Unauthenticated):
        keys.verify(idle, "10.0.0.1")
    assert keys.verify(used, "10.0.0.1").token_id == used_id


def _refusal(keys: KeyService, key: str) -> str:
    with pytest.raises(Unauthenticated) as info:
        keys.verify(key, "10.0.0.1")
    return str(info.value)


def test_a_suspended_key_is_refused_like_a_revoked_one_until_resumed(keys: KeyService) -> None:
    key, key_id = _create(keys)
    revoked, revoked_id = _create(keys)
    with keys.write_txn() as conn:
        keys.revoke(conn, revoked_id)
        record = keys.suspend(conn, key_id, "alert alr_1: new_network")
    assert record["suspended"] is True
    assert record["revoked"] is False
    assert record["suspended_reason"] == "alert alr_1: new_network"
    assert record["suspended_at"] is not None
    assert _refusal(keys, key) == _refusal(keys, revoked)
    shown = keys.show(key_id)
    assert (shown["suspended"], shown["revoked"]) == (True, False)
    with keys.write_txn() as conn, pytest.raises(Conflict, match="already suspended"):
        keys.suspend(conn, key_id, "again")
    with keys.write_txn() as conn:
        resumed = keys.resume(conn, key_id)
    assert (resumed["suspended"], resumed["suspended_at"], resumed["suspended_reason"]) == (
        False,
        None,
        None,
    )
    assert keys.verify(key, "10.0.0.1").token_id == key_id
    with keys.write_txn() as conn, pytest.raises(Conflict, match="not suspended"):
        keys.resume(conn, key_id)
    for op in (
        lambda conn: keys.suspend(conn, "key_nope", ""),
        lambda conn: keys.resume(conn, "key_nope"),
    ):
        with keys.write_txn() as conn, pytest.raises(NotFound):
            op(conn)


def test_revoked_and_expired_keys_are_never_suspended_or_brought_back(
    keys: KeyService, clock: FakeClock
) -> None:
    _, key_id = _create(keys)
    with keys.write_txn() as conn:
        keys.revoke(conn, key_id)
    with keys.write_txn() as conn, pytest.raises(Conflict, match="is revoked"):
        keys.suspend(conn, key_id, "")
    # Suspended, then revoked (an incident on a suspended key): revocation wins for good.
    other, other_id = _create(keys, expires_in_seconds=3600)
    with keys.write_txn() as conn:
        keys.suspend(conn, other_id, "")
        keys.revoke(conn, other_id)
    assert keys.show(other_id)["revoked"] is True
    with keys.write_txn() as conn, pytest.raises(Conflict, match="is revoked"):
        keys.resume(conn, other_id)
    with pytest.raises(Unauthenticated):
        keys.verify(other, "10.0.0.1")
    # Suspended, then expired: resuming does not bring it back either.
    late, late_id = _create(keys, expires_in_seconds=3600)
    with keys.write_txn() as conn:
        keys.suspend(conn, late_id, "")
    clock.advance(3600)
    with keys.write_txn() as conn, pytest.raises(Conflict, match="has expired"):
        keys.resume(conn, late_id)
    with pytest.raises(Unauthenticated):
        keys.verify(late, "10.0.0.1")


def test_a_suspended_key_cannot_be_rolled(keys: KeyService) -> None:
    key, key_id = _create(keys)
    with keys.write_txn() as conn:
        keys.suspend(conn, key_id, "")
    with keys.write_txn() as conn, pytest.raises(Conflict, match="resume it first"):
        keys.roll(conn, key_id, 60, "tok_root", holder=None)
    assert [k["id"] for k in keys.list_keys()] == [key_id]  # no successor was issued
    with keys.write_txn() as conn:
        keys.resume(conn, key_id)
        new = keys.roll(conn, key_id, 60, "tok_root", holder=None).key
    assert keys.verify(new, "10.0.0.1")
    assert keys.verify(key, "10.0.0.1").token_id == key_id  # its grace period


def test_a_suspension_reaches_another_process_within_its_cache_lifetime(
    engine: Engine, keys: KeyService, clock: FakeClock, token_key: bytes
) -> None:
    """A second KeyService on the same database (another server process) caches keys
    for a second: it refuses the suspended key once that second is over, and takes it
    back as soon after the resume."""
    key, key_id = _create(keys)
    other = KeyService(engine, lambda: token_key, clock, cache_seconds=1.0)
    try:
        assert other.verify(key, "10.0.0.1").token_id == key_id  # cached there now
        with keys.write_txn() as conn:
            keys.suspend(conn, key_id, "")

        def refused() -> bool:
            try:
                other.verify(key, "10.0.0.1")
            except Unauthenticated:
                return True
            return False

        deadline = time.monotonic() + 5
        while not refused():
            assert time.monotonic() < deadline, "the suspension never reached the other process"
            time.sleep(0.1)
        with keys.write_txn() as conn:
            keys.resume(conn, key_id)
        deadline = time.monotonic() + 5
        while refused():
            assert time.monotonic() < deadline, "the resume never reached the other process"
            time.sleep(0.1)
    finally:
        other.close()


def test_an_expired_key_cannot_be_rolled_back_to_life(keys: KeyService, clock: FakeClock) -> None:
    key, key_id = _create(keys, expires_in_seconds=3600)
    clock.advance(3600)
    with keys.write_txn() as conn, pytest.raises(InvalidInput, match="has expired"):
        keys.roll(conn, key_id, 60, "tok_root", holder=None)
    assert [k["id"] for k in keys.list_keys()] == [key_id]  # no successor was issued
    with pytest.raises(Unauthenticated):
        keys.verify(key, "10.0.0.1")
