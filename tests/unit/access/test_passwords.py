"""argon2id password hashing, the unknown-user dummy path and the password policy."""

from __future__ import annotations

import threading

import pytest
from argon2 import PasswordHasher, Type, extract_parameters
from argon2.exceptions import VerifyMismatchError

from keysafe.access.passwords import (
    DUMMY_HASH,
    OWASP_ARGON2ID,
    GatedHasher,
    HashingGate,
    check_password_policy,
    default_hasher,
    hash_password,
    needs_rehash,
    verify_dummy,
    verify_password,
)
from keysafe.errors import IntegrityError, InvalidInput, RateLimited

PASSWORD = "tangerine-bicycle-orbit"


class CountingHasher(PasswordHasher):
    """Cheap parameters (fast tests) and a count of argon2 verifications."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1, hash_len=16, salt_len=16)
        self.verifications = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.verifications += 1
        return super().verify(hash, password)


@pytest.fixture
def hasher() -> CountingHasher:
    return CountingHasher()


def test_production_defaults_are_the_owasp_argon2id_profile() -> None:
    params = default_hasher()
    assert params.type is Type.ID
    assert (params.memory_cost, params.time_cost, params.parallelism) == (19456, 2, 1)
    assert (params.salt_len, params.hash_len) == (16, 32)
    assert OWASP_ARGON2ID.memory_cost == 19 * 1024


def test_dummy_hash_uses_the_production_parameters() -> None:
    assert extract_parameters(DUMMY_HASH) == OWASP_ARGON2ID
    assert not needs_rehash(DUMMY_HASH)


def test_hash_and_verify(hasher: CountingHasher) -> None:
    stored = hash_password(PASSWORD, hasher=hasher)
    assert stored.startswith("$argon2id$v=19$")
    assert PASSWORD not in stored
    assert verify_password(stored, PASSWORD, hasher=hasher) is True


def test_hashes_are_salted(hasher: CountingHasher) -> None:
    assert hash_password(PASSWORD, hasher=hasher) != hash_password(PASSWORD, hasher=hasher)


@pytest.mark.parametrize(
    "attempt", ["", "tangerine-bicycle-orbiT", PASSWORD + " ", "x" * 5000, "ünïcödé-wrong"]
)
def test_wrong_password_is_false_never_an_exception(hasher: CountingHasher, attempt: str) -> None:
    stored = hash_password(PASSWORD, hasher=hasher)
    assert verify_password(stored, attempt, hasher=hasher) is False


def test_unicode_passwords_round_trip(hasher: CountingHasher) -> None:
    stored = hash_password("pässwörd-日本語-🔑🔑", hasher=hasher)
    assert verify_password(stored, "pässwörd-日本語-🔑🔑", hasher=hasher)


def test_corrupt_stored_hash_is_an_integrity_error(hasher: CountingHasher) -> None:
    with pytest.raises(IntegrityError):
        verify_password("not-a-hash", PASSWORD, hasher=hasher)


@pytest.mark.parametrize("bad", ["", "x" * 1025])
def test_hash_refuses_empty_or_huge_passwords(hasher: CountingHasher, bad: str) -> None:
    with pytest.raises(InvalidInput):
        hash_password(bad, hasher=hasher)


def test_unknown_user_and_wrong_password_both_run_argon2(hasher: CountingHasher) -> None:
    stored = hash_password(PASSWORD, hasher=hasher)
    cheap_dummy = hash_password("nobody-knows-this-one", hasher=hasher)

    assert verify_password(stored, "wrong-password-here", hasher=hasher) is False
    assert hasher.verifications == 1
    assert verify_dummy("wrong-password-here", hasher=hasher, dummy_hash=cheap_dummy) is False
    assert hasher.verifications == 2
    # Even a too-long password pays for one verification.
    assert verify_password(stored, "y" * 5000, hasher=hasher) is False
    assert hasher.verifications == 3


def test_verify_dummy_with_the_real_dummy_hash_is_false(hasher: CountingHasher) -> None:
    assert verify_dummy(PASSWORD, hasher=hasher) is False
    assert hasher.verifications == 1


def test_dummy_hash_is_not_a_known_password() -> None:
    with pytest.raises(VerifyMismatchError):
        PasswordHasher().verify(DUMMY_HASH, "")


def test_needs_rehash_when_parameters_change(hasher: CountingHasher) -> None:
    cheap = hash_password(PASSWORD, hasher=hasher)
    assert needs_rehash(cheap) is True  # against the production parameters
    assert needs_rehash(cheap, hasher=hasher) is False
    assert needs_rehash("garbage") is True


# -- policy ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "username", "message"),
    [
        ("short-pw", "alice", "at least 12"),
        ("abcdefghijk", "alice", "at least 12"),
        ("x" * 1025, "alice", "at most 1024"),
        ("alice-the-admin", "alice", "username"),
        ("my-ALICE-password", "Alice", "username"),
        ("longusername1", "longusername1", "username"),
        ("password1234", "alice", "too common"),
        ("Password1234", "alice", "too common"),
        ("QWERTY123456", "alice", "too common"),
        ("correcthorsebatterystaple", "alice", "too common"),
        ("zzzzzzzzzzzzzzzz", "alice", "too common"),
    ],
)
def test_policy_refuses(password: str, username: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as info:
        check_password_policy(password, username)
    assert password not in info.value.detail


@pytest.mark.parametrize(
    ("password", "username"),
    [
        ("tangerine-bicycle-orbit", "alice"),
        ("exactly12chr", "bob"),
        ("royal-blue-harbour", "al"),  # two-letter names are not matched inside passwords
        ("ünïcödé-pässwörd", "carol"),
    ],
)
def test_policy_accepts(password: str, username: str) -> None:
    check_password_policy(password, username)


def test_gate_lets_slots_run_queue_wait_and_refuses_the_rest() -> None:
    gate = HashingGate(slots=1, queue=1, wait_seconds=30)
    release = threading.Event()
    inside = threading.Event()
    threads_used: set[str] = set()

    def hold() -> str:
        threads_used.add(threading.current_thread().name)
        inside.set()
        release.wait(30)
        return "held"

    def quick() -> str:
        threads_used.add(threading.current_thread().name)
        return "ran"

    results: list[str] = []
    first = threading.Thread(target=lambda: results.append(gate.run(hold)))
    first.start()
    assert inside.wait(30)
    second = threading.Thread(target=lambda: results.append(gate.run(quick)))
    second.start()
    for _ in range(3000):  # until the second caller is in (queued behind the first)
        if gate._pending == 2:
            break
        threading.Event().wait(0.01)
    assert gate._pending == 2
    with pytest.raises(RateLimited) as refused:
        gate.run(quick)
    assert refused.value.retry_after == 1
    release.set()
    first.join(30)
    second.join(30)
    assert sorted(results) == ["held", "ran"]
    assert gate.run(quick) == "ran"  # free again
    # Every hash ran on the gate's own thread, never on the callers'.
    assert len(threads_used) == 1
    assert threads_used.pop().startswith("keysafe-argon2")
    gate.close()


def test_gate_wait_is_bounded() -> None:
    gate = HashingGate(slots=1, queue=4, wait_seconds=0.05)
    release = threading.Event()
    started = threading.Event()

    def hold() -> None:
        started.set()
        release.wait(30)

    holder = threading.Thread(target=gate.run, args=(hold,))
    holder.start()
    try:
        assert started.wait(30)
        with pytest.raises(RateLimited):
            gate.run(lambda: None)
    finally:
        release.set()
        holder.join(30)
        gate.close()


def test_gate_without_queue_refuses_at_once() -> None:
    gate = HashingGate(slots=1, queue=0, wait_seconds=30)
    release = threading.Event()
    started = threading.Event()

    def hold() -> None:
        started.set()
        release.wait(30)

    holder = threading.Thread(target=gate.run, args=(hold,))
    holder.start()
    try:
        assert started.wait(30)
        with pytest.raises(RateLimited):
            gate.run(lambda: None)
    finally:
        release.set()
        holder.join(30)
        gate.close()


def test_gate_passes_exceptions_through() -> None:
    gate = HashingGate(slots=1, queue=0)

    def fail() -> None:
        raise VerifyMismatchError

    with pytest.raises(VerifyMismatchError):
        gate.run(fail)
    assert gate.run(lambda: 1) == 1  # the slot was given back
    gate.close()


def test_gated_hasher_keeps_parameters_and_releases_on_mismatch(hasher: CountingHasher) -> None:
    gate = HashingGate(slots=1, queue=0)
    gated = GatedHasher(hasher, gate)
    stored = hash_password(PASSWORD, hasher=gated)
    assert verify_password(stored, PASSWORD, hasher=hasher)
    assert extract_parameters(stored).memory_cost == hasher.memory_cost
    assert not verify_password(stored, "wrong horse battery", hasher=gated)
    assert verify_password(stored, PASSWORD, hasher=gated)  # the slot was given back


def test_gate_refuses_nonsense_sizes() -> None:
    with pytest.raises(InvalidInput):
        HashingGate(slots=0, queue=1)
