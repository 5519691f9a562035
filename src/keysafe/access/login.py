"""Logging people in: password, TOTP or recovery code, lockout, step-up, enrolment.

Brute force. Failed logins for one name are counted; ``threshold`` consecutive failures
lock the name for ``lock_minutes`` (429 ``account_locked`` with Retry-After) until the
delay passes or an admin unlocks it. The caller also throttles per source address.

Not revealing which names exist. An unknown name and a wrong password get the same
401 detail and cost one argon2 verification each (the unknown one against a dummy hash);
a locked name answers 429 before any hashing, known or not: failures of unknown names
are counted in the database like a known name's (``keysafe.access.name_locks``), so
every process answers both alike. A user with a confirmed TOTP gets the same 401
without a valid code or recovery code, so the answer never tells whether the password
alone was right.

Every attempt is audited (``auth:login``, ``auth:mfa``, ``auth:totp-enrol``, ...) with the
name attempted and the reason, never the password or the code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from sqlalchemy import Connection, Engine, delete, insert, select, update

from keysafe.access import totp
from keysafe.access.name_locks import UnknownNames
from keysafe.access.passwords import verify_dummy, verify_password
from keysafe.access.sessions import SessionRecord, SessionStore, actor_of
from keysafe.access.users import UserAccounts, UserRow, normalise_name
from keysafe.audit.models import OUTCOME_DENIED, OUTCOME_OK, AuditEvent
from keysafe.audit.service import AuditLog
from keysafe.clock import Clock
from keysafe.crypto.keyring import Envelope, Keyring
from keysafe.errors import AccountLocked, Conflict, InvalidInput, RateLimited, Unauthenticated
from keysafe.store.engine import read_conn, write_txn
from keysafe.store.tables_users import recovery_codes, users

__all__ = ["LOGIN_FAILED", "LoginFailed", "LoginResult", "LoginService"]

LOGIN_FAILED = "invalid name, password or second factor"
_US = 1_000_000


class LoginFailed(Unauthenticated):
    """A refused login or second factor. ``reason`` is for the audit trail only: the
    caller sees the one vague detail."""

    def __init__(self, reason: str, detail: str = LOGIN_FAILED) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class LoginResult:
    token: str  # shown once
    session: dict[str, Any]
    name: str
    mfa: bool


@dataclass(frozen=True, slots=True)
class Attempt:
    """Where an attempt comes from, for the audit trail."""

    source: str
    request_id: str


def _totp_context(user_id: str) -> bytes:
    # Binds the sealed secret to its user: a ciphertext copied onto another row fails.
    return b"user-totp:" + user_id.encode()


class LoginService:
    def __init__(
        self,
        engine: Engine,
        accounts: UserAccounts,
        sessions: SessionStore,
        keyring: Callable[[], Keyring],
        audit: AuditLog,
        clock: Clock,
        *,
        threshold: int = 5,
        lock_minutes: int = 15,
    ) -> None:
        self._engine = engine
        self._accounts = accounts
        self._sessions = sessions
        self._keyring = keyring
        self._audit = audit
        self._clock = clock
        self._threshold = threshold
        self._lock_us = lock_minutes * 60 * _US
        self._unknown = UnknownNames(engine, lambda: keyring().token_hmac_key)

    # -- login ---------------------------------------------------------------------------

    def login(self, name: str, password: str, code: str | None, at: Attempt) -> LoginResult:
        """A new session for ``name`` after the password and, when the user has a
        confirmed TOTP, a valid TOTP or unused recovery code.

        Raises AccountLocked while the name is locked, LoginFailed (401, one detail for
        every cause) otherwise; every outcome is audited."""
        key = normalise_name(name) or name.strip().lower()[:64]
        user = self._accounts.find(key)
        self._refuse_if_locked(key, user, at, "auth:login")
        ph = self._accounts.hasher()
        if user is None:
            verify_dummy(password, hasher=ph)  # the cost of a real check
            self._fail(None, key, "unknown user", at, "auth:login")
        reason: str | None = None
        if not verify_password(user.password_hash, password, hasher=ph):
            reason = "wrong password"
        elif user.disabled:
            reason = "user disabled"
        now = self._clock.now_us()
        with write_txn(self._engine) as conn:
            mfa_at: int | None = None
            if reason is None and user.totp_confirmed:
                reason = self._second_factor(conn, user, code or "", now)
                mfa_at = now
            if reason is None:
                token, session = self._sessions.create(conn, user.id, at.source, mfa_at)
                conn.execute(
                    update(users)
                    .where(users.c.id == user.id)
                    .values(
                        failed_count=0,
                        locked_until=None,
                        last_login_at=now,
                        last_login_from=at.source[:64],
                    )
                )
                how = "password and second factor" if mfa_at else "password"
                self._event(conn, at, actor_of(user.name), "auth:login", key, OUTCOME_OK, how)
        if reason is not None:
            self._fail(user, key, reason, at, "auth:login")
        self._rehash_if_needed(user, password)
        return LoginResult(token, session, user.name, mfa_at is not None)

    def _rehash_if_needed(self, user: UserRow, password: str) -> None:
        from keysafe.access.passwords import hash_password, needs_rehash

        ph = self._accounts.hasher()
        if needs_rehash(user.password_hash, hasher=ph):
            try:
                new = hash_password(password, hasher=ph)
            except RateLimited:
                return  # the session exists: upgrade the hash at a quieter login
            with write_txn(self._engine) as conn:
                conn.execute(update(users).where(users.c.id == user.id).values(password_hash=new))

    def _refuse_if_locked(self, key: str, user: UserRow | None, at: Attempt, op: str) -> None:
        now = self._clock.now_us()
        until = self._unknown.locked_until(key) if user is None else user.locked_until
        if until is None or until <= now:
            return
        with write_txn(self._engine) as conn:
            self._event(conn, at, "anonymous", op, key, OUTCOME_DENIED, "account locked")
        raise AccountLocked(
            "too many failed attempts for this account; try again later or ask an admin",
            retry_after=max(1, -(-(until - now) // _US)),
        )

    def _fail(self, user: UserRow | None, key: str, reason: str, at: Attempt, op: str) -> NoReturn:
        """Count a failure for the name (locking it at the threshold), audit, raise."""
        now = self._clock.now_us()
        locked = False
        with write_txn(self._engine) as conn:
            if user is None:
                locked = self._unknown.failed(conn, key, now, self._threshold, self._lock_us)
            else:
                conn.execute(
                    update(users)
                    .where(users.c.id == user.id)
                    .values(failed_count=users.c.failed_count + 1)
                )
                count = conn.execute(
                    select(users.c.failed_count).where(users.c.id == user.id)
                ).scalar_one()
                if count >= self._threshold:
                    locked = True
                    conn.execute(
                        update(users)
                        .where(users.c.id == user.id)
                        .values(failed_count=0, locked_until=now + self._lock_us)
                    )
            detail = reason + (f"; locked for {self._lock_us // (60 * _US)} min" if locked else "")
            self._event(conn, at, "anonymous", op, key, OUTCOME_DENIED, detail)
        raise LoginFailed(reason)

    def _second_factor(self, conn: Connection, user: UserRow, code: str, now: int) -> str | None:
        """None when ``code`` is a fresh TOTP code (its step is recorded, so it never
        works again) or an unused recovery code (marked used); else the reason."""
        if not code.strip():
            return "second factor missing"
        secret = self._secret(conn, user.id)
        step = totp.verify_totp(secret, code, now / _US, user.totp_last_step)
        if step is not None:
            claimed = conn.execute(
                update(users)
                .where(users.c.id == user.id)
                .where((users.c.totp_last_step.is_(None)) | (users.c.totp_last_step < step))
                .values(totp_last_step=step)
            )
            return None if claimed.rowcount == 1 else "TOTP code replayed"
        if totp.normalise_recovery_code(code) is not None:
            rows = conn.execute(
                select(recovery_codes.c.idx, recovery_codes.c.code_hash).where(
                    recovery_codes.c.user_id == user.id, recovery_codes.c.used_at.is_(None)
                )
            ).all()
            key = self._keyring().token_hmac_key
            index = totp.verify_recovery_code(code, [bytes(r.code_hash) for r in rows], key)
            if index is not None:
                used = conn.execute(
                    update(recovery_codes)
                    .where(
                        recovery_codes.c.user_id == user.id,
                        recovery_codes.c.idx == rows[index].idx,
                        recovery_codes.c.used_at.is_(None),
                    )
                    .values(used_at=now)
                )
                return None if used.rowcount == 1 else "recovery code already used"
            return "wrong or used recovery code"
        if totp.verify_totp(secret, code, now / _US, None) is not None:
            return "TOTP code replayed"  # valid now, but its step was already used
        return "wrong TOTP code"

    def _secret(self, conn: Connection, user_id: str) -> str:
        row = conn.execute(
            select(
                users.c.totp_kek_version, users.c.totp_wrapped_dek, users.c.totp_ciphertext
            ).where(users.c.id == user_id)
        ).one()
        envelope = Envelope(row[0], bytes(row[1]), bytes(row[2]))
        return self._keyring().decrypt(envelope, _totp_context(user_id)).decode()

    # -- step-up -------------------------------------------------------------------------

    def step_up(self, session: SessionRecord, code: str, at: Attempt) -> None:
        """Prove the second factor again in ``session``: its ``mfa_at`` becomes now.

        Raises InvalidInput without a confirmed TOTP, AccountLocked while locked,
        LoginFailed for a wrong, replayed or used code (counted like a failed login)."""
        with read_conn(self._engine) as conn:
            user = self._accounts.by_id(conn, session.user_id)
        if not user.totp_confirmed:
            raise InvalidInput("no second factor enrolled: run `keysafe mfa enroll` first")
        self._refuse_if_locked(user.name, user, at, "auth:mfa")
        now = self._clock.now_us()
        actor = actor_of(user.name)
        with write_txn(self._engine) as conn:
            reason = self._second_factor(conn, user, code, now)
            if reason is None:
                self._sessions.set_mfa(conn, session.id, now)
                self._event(conn, at, actor, "auth:mfa", user.name, OUTCOME_OK, session.id)
        if reason is not None:
            self._fail(user, user.name, reason, at, "auth:mfa")

    # -- TOTP enrolment ------------------------------------------------------------------

    def begin_totp(self, session: SessionRecord, password: str, at: Attempt) -> dict[str, str]:
        """Start TOTP enrolment for the session's user, who proves the password again (a
        stolen session alone must not bind its thief's device). Returns the otpauth URI
        and the secret, for this reply only. Raises Conflict when a TOTP is already
        confirmed (an admin resets it), LoginFailed for a wrong password."""
        with read_conn(self._engine) as conn:
            user = self._accounts.by_id(conn, session.user_id)
        self._refuse_if_locked(user.name, user, at, "auth:totp-enrol")
        if not verify_password(user.password_hash, password, hasher=self._accounts.hasher()):
            self._fail(user, user.name, "wrong password", at, "auth:totp-enrol")
        if user.totp_confirmed:
            raise Conflict("a second factor is already enrolled; an admin can reset it")
        secret = totp.new_totp_secret()
        envelope = self._keyring().encrypt(secret.encode(), _totp_context(user.id))
        with write_txn(self._engine) as conn:
            conn.execute(
                update(users)
                .where(users.c.id == user.id, users.c.totp_confirmed.is_(False))
                .values(
                    totp_kek_version=envelope.kek_version,
                    totp_wrapped_dek=envelope.wrapped_dek,
                    totp_ciphertext=envelope.ciphertext,
                    totp_last_step=None,
                )
            )
            self._event(
                conn, at, actor_of(user.name), "auth:totp-enrol", user.name, OUTCOME_OK, "started"
            )
        return {"otpauth_uri": totp.provisioning_uri(secret, user.name), "secret": secret}

    def confirm_totp(self, session: SessionRecord, code: str, at: Attempt) -> list[str]:
        """Finish enrolment with a code from the device: the TOTP becomes required at
        login, the session counts as MFA-proved now, and fresh recovery codes are
        returned (this once; only their keyed hashes are stored). Raises InvalidInput
        without a pending enrolment or for a wrong code."""
        now = self._clock.now_us()
        actor = actor_of(session.name)
        with write_txn(self._engine) as conn:
            user = self._accounts.by_id(conn, session.user_id)
            if not user.totp_pending:
                raise InvalidInput("no enrolment in progress: start with POST /api/v1/auth/totp")
            step = totp.verify_totp(self._secret(conn, user.id), code, now / _US, None)
            codes: list[str] = []
            if step is not None:
                conn.execute(
                    update(users)
                    .where(users.c.id == user.id)
                    .values(totp_confirmed=True, totp_last_step=step)
                )
                codes = totp.new_recovery_codes(10)
                key = self._keyring().token_hmac_key
                conn.execute(delete(recovery_codes).where(recovery_codes.c.user_id == user.id))
                for index, value in enumerate(codes):
                    conn.execute(
                        insert(recovery_codes).values(
                            user_id=user.id,
                            idx=index,
                            code_hash=totp.hash_recovery_code(value, key),
                            used_at=None,
                        )
                    )
                self._sessions.set_mfa(conn, session.id, now)
                outcome, detail = OUTCOME_OK, "confirmed"
            else:
                outcome, detail = OUTCOME_DENIED, "wrong code"
            self._event(conn, at, actor, "auth:totp-confirm", user.name, outcome, detail)
        if step is None:
            raise InvalidInput("the code does not match: check the device's clock and retry")
        return codes

    # -- logout and unlock ---------------------------------------------------------------

    def logout(self, session: SessionRecord, at: Attempt) -> None:
        """Revoke ``session`` (audited)."""
        with write_txn(self._engine) as conn:
            self._sessions.revoke(conn, session.id)
            self._event(
                conn,
                at,
                actor_of(session.name),
                "session:revoke",
                session.name,
                OUTCOME_OK,
                f"{session.id} logout",
            )

    def forget_unknown(self, name: str) -> None:
        """Clear the failures and lock of an unknown ``name`` (an admin unlock)."""
        self._unknown.clear(normalise_name(name) or name)

    def _event(
        self,
        conn: Connection,
        at: Attempt,
        actor: str,
        operation: str,
        name: str,
        outcome: str,
        detail: str,
    ) -> None:
        event = AuditEvent(
            self._clock.now_us(),
            at.request_id,
            actor[:64],
            at.source[:64],
            operation,
            f"user/{name}"[:512],
            outcome,
            detail,
        )
        self._audit.append_in_txn(conn, [event])
