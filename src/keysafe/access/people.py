"""People: accounts and roles, login, sessions, built together for the server."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from argon2 import PasswordHasher
from sqlalchemy import Engine

from keysafe.access.login import LoginService
from keysafe.access.passwords import GatedHasher, HashingGate, default_hasher
from keysafe.access.policy_store import PolicyStore
from keysafe.access.sessions import SessionStore
from keysafe.access.users import UserAccounts
from keysafe.audit.service import AuditLog
from keysafe.clock import Clock
from keysafe.crypto.keyring import Keyring

__all__ = ["People", "build_people"]


@dataclass(frozen=True, slots=True)
class People:
    accounts: UserAccounts
    login: LoginService
    sessions: SessionStore
    gate: HashingGate | None = None

    def close(self) -> None:
        """Stop the password-hashing threads, if any."""
        if self.gate is not None:
            self.gate.close()


def build_people(
    engine: Engine,
    keyring: Callable[[], Keyring],
    policies: PolicyStore,
    audit: AuditLog,
    clock: Clock,
    *,
    idle_minutes: int = 30,
    max_hours: int = 12,
    lockout_threshold: int = 5,
    lockout_minutes: int = 15,
    cache_seconds: float = 1.0,
    hasher: Callable[[], PasswordHasher] | None = None,
    gate: HashingGate | None = None,
) -> People:
    """Wire the three services; ``hasher`` lets tests use cheap argon2 parameters;
    ``gate`` bounds concurrent hashing (see ``passwords.HashingGate``)."""
    if gate is not None:
        hasher = _gated(hasher, gate)
    sessions = SessionStore(
        engine,
        lambda: keyring().token_hmac_key,
        clock,
        idle_seconds=idle_minutes * 60,
        max_seconds=max_hours * 3600,
        cache_seconds=cache_seconds,
    )
    accounts = UserAccounts(engine, policies, sessions, clock, hasher=hasher)
    login = LoginService(
        engine,
        accounts,
        sessions,
        keyring,
        audit,
        clock,
        threshold=lockout_threshold,
        lock_minutes=lockout_minutes,
    )
    return People(accounts=accounts, login=login, sessions=sessions, gate=gate)


def _gated(
    hasher: Callable[[], PasswordHasher] | None, gate: HashingGate
) -> Callable[[], PasswordHasher]:
    if hasher is None:
        fixed = GatedHasher(default_hasher(), gate)
        return lambda: fixed
    inner = hasher
    return lambda: GatedHasher(inner(), gate)
