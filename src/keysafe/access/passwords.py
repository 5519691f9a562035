"""Password hashing (argon2id) and a minimal password policy.

Parameters: argon2id with m=19456 KiB (19 MiB), t=2, p=1, the first configuration the
OWASP Password Storage Cheat Sheet lists for Argon2id; 16-byte salt, 32-byte tag.
argon2-cffi's own default (RFC 9106 "low memory": 64 MiB, t=3, p=4) is stronger but
costs several times more memory per concurrent login; OWASP's profile is the documented
floor we commit to. Hashes carry their parameters, so ``needs_rehash`` upgrades old
ones at the next successful login if these ever change.

An unknown user must cost as much as a wrong password, or response times reveal which
accounts exist: ``verify_dummy`` runs the same argon2 verification against
``DUMMY_HASH``, made with the same parameters from a random password nobody kept.

Every function takes an optional ``hasher`` so tests can use cheap parameters; the
production default is ``default_hasher()``. Nothing here logs or echoes a password.

Each argon2 computation holds 19 MiB and a CPU core for tens of milliseconds, and login
is anonymous: ``HashingGate`` lets only a few run at once per process, lets a bounded
number of callers wait for a turn, and refuses the rest with RateLimited (429) at once,
so a crowd of logins costs a bounded amount of memory and threads (``GatedHasher``
applies it to every hash and verification).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Literal, TypeVar

from argon2 import Parameters, PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from keysafe.errors import IntegrityError, InvalidInput, RateLimited

T = TypeVar("T")

__all__ = [
    "DUMMY_HASH",
    "MAX_PASSWORD_LENGTH",
    "MIN_PASSWORD_LENGTH",
    "OWASP_ARGON2ID",
    "GatedHasher",
    "HashingGate",
    "check_password_policy",
    "default_hasher",
    "hash_password",
    "needs_rehash",
    "verify_dummy",
    "verify_password",
]

# OWASP Password Storage Cheat Sheet: "m=19456 (19 MiB), t=2, p=1" for Argon2id.
OWASP_ARGON2ID = Parameters(
    type=Type.ID,
    version=19,
    salt_len=16,
    hash_len=32,
    time_cost=2,
    memory_cost=19456,
    parallelism=1,
)

# argon2id of a random password generated once and thrown away, with OWASP_ARGON2ID
# (a test checks the parameters match). A literal rather than computed at import time.
DUMMY_HASH = (
    "$argon2id$v=19$m=19456,t=2,p=1$8Lvs/iPpnCAtonVauJXzsw"
    "$ea5g5u/zfUY1QLiKeT5DpzZ/Z5UWfs2gYh/Nwf3wvFw"
)

MIN_PASSWORD_LENGTH = 12
# Generous (passphrases welcome) yet bounded, so a megabyte "password" is refused early.
MAX_PASSWORD_LENGTH = 1024

# The most common passwords that are long enough to pass the length rule (shorter ones
# already fail it), from public breach frequency lists. Compared case-insensitively.
_COMMON_PASSWORDS = frozenset(
    {
        "123456789012",
        "1234567890123",
        "12345678901234",
        "123456789123",
        "123123123123",
        "123456123456",
        "111111111111",
        "000000000000",
        "121212121212",
        "147258369147",
        "1q2w3e4r5t6y",
        "1q2w3e4r5t6y7u",
        "q1w2e3r4t5y6",
        "1qaz2wsx3edc",
        "qazwsxedcrfv",
        "zaq12wsxcde3",
        "qwertyuiop12",
        "qwertyuiop123",
        "qwertyuiopasdf",
        "qwerty123456",
        "123456qwerty",
        "asdfghjkl123",
        "abc123456789",
        "abcdefghijkl",
        "abcd12345678",
        "password1234",
        "password12345",
        "password123!",
        "passw0rd1234",
        "passwordpassword",
        "p@ssw0rd1234",
        "iloveyou1234",
        "letmein12345",
        "welcome12345",
        "welcome@1234",
        "changeme1234",
        "administrator",
        "admin1234567",
        "adminadmin123",
        "football1234",
        "baseball1234",
        "superman1234",
        "sunshine1234",
        "princess1234",
        "monkey123456",
        "dragon123456",
        "trustno1trustno1",
        "correcthorsebatterystaple",
        "aaaaaaaaaaaa",
        "secretsecret",
    }
)


def default_hasher() -> PasswordHasher:
    """The production hasher: argon2id with the OWASP parameters above."""
    return PasswordHasher.from_parameters(OWASP_ARGON2ID)


def hash_password(password: str, *, hasher: PasswordHasher | None = None) -> str:
    """A salted argon2id hash in PHC string form (parameters included).

    Raises InvalidInput for an empty or over-long password. The policy is separate
    (``check_password_policy``) so that hashing never depends on it."""
    if not password or len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(f"password must be 1..{MAX_PASSWORD_LENGTH} characters")
    return (hasher or default_hasher()).hash(password)


def verify_password(
    stored_hash: str, password: str, *, hasher: PasswordHasher | None = None
) -> bool:
    """Whether ``password`` matches ``stored_hash``; the library compares in constant time.

    Returns False for a wrong (or absurdly long) password, never raises for one. Raises
    IntegrityError if ``stored_hash`` is not an argon2 hash at all: a corrupt row must be
    loud, not look like a user mistyping."""
    ph = hasher or default_hasher()
    if len(password) > MAX_PASSWORD_LENGTH:
        # Still pay for one verification so the refusal takes the usual time.
        verify_dummy(password[:MAX_PASSWORD_LENGTH], hasher=ph)
        return False
    try:
        return ph.verify(stored_hash, password)
    except VerifyMismatchError:
        return False
    except InvalidHashError as exc:
        raise IntegrityError("stored password hash is malformed") from exc
    except VerificationError:
        return False


def verify_dummy(
    password: str, *, hasher: PasswordHasher | None = None, dummy_hash: str = DUMMY_HASH
) -> bool:
    """Spend the time of one real verification and return False.

    Call it when the user does not exist, so that path costs what a wrong password
    costs. ``dummy_hash`` must use the same parameters as real hashes (the default
    does, for the production hasher)."""
    # A mismatch is the expected outcome: nobody knows the dummy password.
    with contextlib.suppress(VerificationError):
        (hasher or default_hasher()).verify(dummy_hash, password[:MAX_PASSWORD_LENGTH])
    return False


def needs_rehash(stored_hash: str, *, hasher: PasswordHasher | None = None) -> bool:
    """Whether ``stored_hash`` was made with other parameters than ``hasher``'s and should
    be replaced after the next successful login. True for an unparseable hash."""
    try:
        return (hasher or default_hasher()).check_needs_rehash(stored_hash)
    except (InvalidHashError, ValueError):
        return True


def check_password_policy(password: str, username: str) -> None:
    """Refuse passwords that are too short, too long, about the username, or among the
    most common ones. Raises InvalidInput naming the rule broken (never the password).

    Deliberately minimal, after NIST SP 800-63B: length and a deny list, no composition
    rules (they push people to ``Password1!``)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"password must be at least {MIN_PASSWORD_LENGTH} characters long")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(f"password must be at most {MAX_PASSWORD_LENGTH} characters long")
    folded = password.casefold()
    name = username.strip().casefold()
    # Containment only for names of 3+ characters: a user "al" may still use "royal...".
    if name and (folded == name or (len(name) >= 3 and name in folded)):
        raise InvalidInput("password must not contain the username")
    if folded in _COMMON_PASSWORDS or len(set(folded)) == 1:
        raise InvalidInput("password is too common; choose a less guessable one")


class HashingGate:
    """At most ``slots`` password hashes at once, on ``slots`` threads of their own;
    at most ``queue`` callers waiting (each for at most ``wait_seconds``); anyone beyond
    is refused at once.

    Own threads, because glibc keeps a freed 19 MiB argon2 buffer in the arena of the
    thread that used it: hashing on any of the server's 40 worker threads retained up to
    40 x 19 MiB. Measured, 200 concurrent logins on one process: peak RSS 124 -> 1091 MB
    unbounded, -> 445 MB with two at a time on the worker threads, -> 179 MB with two
    at a time on two threads of their own."""

    def __init__(self, slots: int, queue: int, wait_seconds: float = 5.0) -> None:
        if slots < 1 or queue < 0:
            raise InvalidInput("password hashing needs at least one slot and a queue >= 0")
        self._pool = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="keysafe-argon2")
        self._admitted = slots + queue
        self._wait = wait_seconds
        self._pending = 0
        self._lock = threading.Lock()

    def run(self, work: Callable[[], T]) -> T:
        """``work()`` on a hashing thread, its result or exception. Raises RateLimited
        when ``slots + queue`` calls are already in, or when no slot frees up in time."""
        with self._lock:
            if self._pending >= self._admitted:
                raise _busy()
            self._pending += 1
        try:
            future = self._pool.submit(work)
            try:
                return future.result(timeout=self._wait)
            except FutureTimeout:
                if future.cancel():
                    raise _busy() from None
                return future.result()  # already hashing: it ends within one hash's time
        finally:
            with self._lock:
                self._pending -= 1

    def close(self) -> None:
        """Stop the hashing threads (after the running hashes)."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def _busy() -> RateLimited:
    return RateLimited("too many password checks in progress; try again shortly", retry_after=1)


class GatedHasher(PasswordHasher):
    """``inner``'s parameters, with every hash and verification passing ``gate``."""

    def __init__(self, inner: PasswordHasher, gate: HashingGate) -> None:
        super().__init__(
            time_cost=inner.time_cost,
            memory_cost=inner.memory_cost,
            parallelism=inner.parallelism,
            hash_len=inner.hash_len,
            salt_len=inner.salt_len,
            type=inner.type,
        )
        self._gate = gate

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        return self._gate.run(functools.partial(super().hash, password, salt=salt))

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        return self._gate.run(functools.partial(super().verify, hash, password))
