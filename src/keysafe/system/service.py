"""Initialisation, seal and unseal, key rotation: the vault's own lifecycle.

State in ``sys_state`` (names persisted, only ever add):
``seal_config`` (JSON: mode ``shamir``, ``key``, ``pkcs11`` or ``transit``, shares,
threshold; with an unseal source they count recovery shares), ``keyring`` (the keyring
sealed under the root key), ``root_wrapped`` (the root key wrapped by the unseal source)
and ``sealed`` (``1``/``0``: the operator's intent, which every server process follows
so that ``operator seal`` seals them all).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from sqlalchemy import Connection, Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from keysafe.access.jwt_tokens import SigningKeySet
from keysafe.access.service import TokenService
from keysafe.audit.service import anchor_chain
from keysafe.crypto import rootkey
from keysafe.crypto.barrier import Barrier
from keysafe.crypto.envelope import DecryptionFailed
from keysafe.crypto.keyring import Keyring
from keysafe.errors import (
    AlreadyInitialized,
    InvalidInput,
    NotInitialized,
    Sealed,
)
from keysafe.store.engine import read_conn, write_txn
from keysafe.store.invalidations import KIND_SEAL, UNANNOUNCED, Announcer
from keysafe.store.tables import sys_state
from keysafe.system import autounseal
from keysafe.system.retry import SourceRetry
from keysafe.unseal.source import UnsealSource

log = logging.getLogger("keysafe.system")
T = TypeVar("T")

MODE_SHAMIR = "shamir"
MODE_KEY = "key"
# Modes of vaults whose root key an unseal source wraps (named after the source).
AUTO_MODES = frozenset({"pkcs11", "transit"})


@dataclass(frozen=True, slots=True)
class InitResult:
    root_token: str
    shares: list[str]  # Shamir shares, or the single unseal key in key mode
    recovery: bool = False  # the shares are recovery shares (an unseal source unseals)


class SystemService:
    def __init__(
        self,
        engine: Engine,
        barrier: Barrier,
        tokens: TokenService,
        *,
        unseal_key: str | None = None,
        source: UnsealSource | None = None,
        retry_max_seconds: float = 30.0,
    ) -> None:
        self._engine = engine
        self._barrier = barrier
        self._tokens = tokens
        # An automatic unseal source (embedded mode, key file, KEYSAFE_UNSEAL_KEY).
        self._unseal_key = unseal_key
        # An auto-unseal source (HSM, transit), and why it has not unsealed us yet.
        self.source = source
        self.retry = SourceRetry(retry_max_seconds)
        self._config_cache: dict[str, Any] | None = None
        self._postgres = engine.dialect.name == "postgresql"
        # The sealed keyring this process last loaded: another process's rotation of KEKs
        # or signing keys shows up as a different blob.
        self._keyring_seen: bytes | None = None
        # Seal-state transitions of this process (an unseal writing the shared flag, the
        # poller applying it) happen one at a time, so a poll that read the flag just
        # before an unseal cannot seal again right after it.
        self._state_lock = threading.RLock()
        self._signing_cache: tuple[Keyring, SigningKeySet] | None = None
        # Tells the other processes to follow a seal at once (set by the server).
        self.announcer: Announcer = UNANNOUNCED

    # -- state ---------------------------------------------------------------------------

    def _get(self, conn: Connection, key: str, *, lock: bool = False) -> bytes | None:
        query = select(sys_state.c.value).where(sys_state.c.key == key)
        if lock and self._postgres:
            query = query.with_for_update()
        row = conn.execute(query).first()
        return None if row is None else bytes(row.value)

    def _claim(self, conn: Connection, config: dict[str, Any]) -> None:
        """Write the seal configuration if there is none: of two concurrent inits
        (PostgreSQL) exactly one wins; the other gets AlreadyInitialized."""
        dialect_insert = postgresql.insert if self._postgres else sqlite.insert
        claimed = conn.execute(
            dialect_insert(sys_state)
            .values(key="seal_config", value=orjson.dumps(config))
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(sys_state.c.key)
        ).first()
        if claimed is None:
            raise AlreadyInitialized("the vault is already initialised")

    def _put(self, conn: Connection, key: str, value: bytes) -> None:
        dialect_insert = (
            postgresql.insert if self._engine.dialect.name == "postgresql" else sqlite.insert
        )
        stmt = dialect_insert(sys_state).values(key=key, value=value)
        conn.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"value": value}))

    def seal_config(self) -> dict[str, Any] | None:
        if self._config_cache is None:
            with read_conn(self._engine) as conn:
                raw = self._get(conn, "seal_config")
            self._config_cache = None if raw is None else orjson.loads(raw)
        return self._config_cache

    def status(self) -> dict[str, Any]:
        config = self.seal_config()
        return {
            "initialized": config is not None,
            "sealed": self._barrier.sealed,
            "threshold": config["threshold"] if config else 0,
            "shares": config["shares"] if config else 0,
            "progress": self._barrier.progress,
            "unseal_mode": config["mode"] if config else None,
            "recovery": bool(config and config.get("recovery")),
            "reason": self.retry.reason if self._barrier.sealed else "",
        }

    # -- init ----------------------------------------------------------------------------

    def initialize(self, shares: int, threshold: int, *, mode: str = MODE_SHAMIR) -> InitResult:
        """Create the keyring and the root token; returns them once. Stays sealed, unless
        an unseal source is configured: then the source wraps the root key, the shares
        are recovery shares, and the vault unseals itself right away."""
        if mode == MODE_SHAMIR and not 1 <= threshold <= shares <= 16:
            raise InvalidInput("need 1 <= threshold <= shares <= 16")
        root_key = rootkey.new_root_key()
        keyring = Keyring.new()
        if mode == MODE_SHAMIR and self.source is not None:
            return autounseal.initialize(self, root_key, keyring, shares, threshold)
        with write_txn(self._engine) as conn:
            if self._get(conn, "seal_config") is not None:
                raise AlreadyInitialized("the vault is already initialised")
            if mode == MODE_SHAMIR:
                texts = rootkey.split(root_key, shares, threshold)
                config = {"mode": MODE_SHAMIR, "shares": shares, "threshold": threshold}
            else:
                texts = [rootkey.encode_unseal_key(root_key)]
                config = {"mode": MODE_KEY, "shares": 1, "threshold": 1}
            self._claim(conn, config)
            self._put(conn, "keyring", keyring.seal_with(root_key))
            self._put(conn, "sealed", b"1")
            issued = self._tokens.mint_root(conn, keyring.token_hmac_key)
            # Anchor the audit chain now, so that an empty trail later means deleted.
            anchor_chain(conn, keyring.audit_hmac_key)
        self._config_cache = config
        return InitResult(issued.token, texts)

    # -- seal / unseal -------------------------------------------------------------------

    def _keyring_blob(self) -> bytes:
        with read_conn(self._engine) as conn:
            blob = self._get(conn, "keyring")
        if blob is None:
            raise NotInitialized("the vault is not initialised; run `keysafe operator init`")
        return blob

    def _set_sealed_flag(self, sealed: bool, *, by_operator: bool = False) -> None:
        with write_txn(self._engine) as conn:
            self._put(conn, "sealed", b"1" if sealed else b"0")
            if not sealed and by_operator:
                self._put(conn, "sealed_by_operator", b"0")

    def unseal(
        self, share: str | None = None, key: str | None = None, nonce: str | None = None
    ) -> dict[str, Any]:
        """Submit one share (Shamir mode) or the unseal key (key mode): the status, plus
        while still sealed the ``nonce`` of the unseal attempt, which further shares (and
        a reset) must present (see ``Barrier``). Raises Conflict for a wrong nonce."""
        with self._state_lock:
            status = self._unseal_unlocked(share=share, key=key, nonce=nonce)
        status["nonce"] = (self._barrier.nonce or "") if status["sealed"] else ""
        return status

    def _unseal_unlocked(
        self, share: str | None = None, key: str | None = None, nonce: str | None = None
    ) -> dict[str, Any]:
        config = self.seal_config()
        if config is None:
            raise NotInitialized("the vault is not initialised; run `keysafe operator init`")
        if not self._barrier.sealed:
            return self.status()
        blob = self._keyring_blob()
        text = key or share
        if not text:
            raise InvalidInput("give an unseal share or key")
        if text.strip().startswith(rootkey.UNSEAL_KEY_PREFIX):
            if config["mode"] != MODE_KEY:
                raise InvalidInput("this vault is unsealed with Shamir shares, not an unseal key")
            try:
                root_key = rootkey.decode_unseal_key(text)
            except rootkey.BadShare as exc:
                raise InvalidInput(str(exc)) from exc
            self._barrier.unseal_with_root(root_key, blob)
        elif config["mode"] in AUTO_MODES:
            # Recovery shares only authorise the source to unseal (after an operator's
            # seal): on their own they open nothing.
            self._barrier.add_share(
                text,
                int(config["threshold"]),
                blob,
                nonce,
                opener=lambda key: autounseal.root_for_recovery(self, key),
            )
        else:
            if config["mode"] != MODE_SHAMIR:
                raise InvalidInput("this vault is unsealed with an unseal key (ksu1_...)")
            self._barrier.add_share(text, int(config["threshold"]), blob, nonce)
        if not self._barrier.sealed:
            self._set_sealed_flag(False, by_operator=True)
            self.retry.succeeded()
            log.info("vault unsealed")
        return self.status()

    def generate_root(self, shares: list[str] | None = None, key: str | None = None) -> str:
        """A new root token for whoever proves they hold the unseal material.

        For when the root token was lost or revoked (for instance after a leak report):
        a threshold of shares, or the unseal key, must open the keyring.
        """
        config = self.seal_config()
        if config is None:
            raise NotInitialized("the vault is not initialised; run `keysafe operator init`")
        blob = self._keyring_blob()
        try:
            if key:
                root_key = rootkey.decode_unseal_key(key)
            elif shares and config["mode"] in AUTO_MODES:
                recovery = rootkey.combine([rootkey.check_share(s) for s in shares])
                root_key = (
                    autounseal.root_for_recovery(self, recovery)
                    if self._barrier.sealed
                    else autounseal.checked_root(self, recovery)
                )
            elif shares:
                root_key = rootkey.combine([rootkey.check_share(s) for s in shares])
            else:
                raise InvalidInput("give the unseal key or enough unseal shares")
            keyring = Keyring.open_with(root_key, blob)
        except (rootkey.BadShare, DecryptionFailed) as exc:
            raise InvalidInput("the unseal material does not open this vault") from exc
        with write_txn(self._engine) as conn:
            issued = self._tokens.mint_root(conn, keyring.token_hmac_key)
        return issued.token

    def auto_unseal(self) -> bool:
        with self._state_lock:
            return self._auto_unseal_unlocked()

    def _auto_unseal_unlocked(self) -> bool:
        """Unseal from the configured key source (embedded mode, key file), if any.

        Never undoes an operator's seal: after ``operator seal`` the vault stays sealed,
        across restarts too, until someone unseals it with the key or the shares.
        """
        config = self.seal_config()
        if config is None or not self._barrier.sealed:
            return False
        if config["mode"] in AUTO_MODES:
            return autounseal.source_unseal(self)
        if self._unseal_key is None:
            return False
        with read_conn(self._engine) as conn:
            if self._get(conn, "sealed_by_operator") == b"1":
                log.warning("the vault was sealed by an operator; staying sealed")
                return False
        try:
            root_key = rootkey.decode_unseal_key(self._unseal_key)
        except rootkey.BadShare as exc:
            raise InvalidInput(f"the configured unseal key is invalid: {exc}") from exc
        self._barrier.unseal_with_root(root_key, self._keyring_blob())
        self._set_sealed_flag(False)
        return True

    def seal(self) -> dict[str, Any]:
        with self._state_lock:
            return self._seal_unlocked()

    def _seal_unlocked(self) -> dict[str, Any]:
        """Drop the keys from memory; every process of this vault follows."""
        with write_txn(self._engine) as conn:
            self._put(conn, "sealed", b"1")
            self._put(conn, "sealed_by_operator", b"1")
            self.announcer.announce(conn, KIND_SEAL, "")
        self._barrier.seal()
        log.info("vault sealed")
        return self.status()

    def follow_seal_state(self) -> None:
        with self._state_lock:
            return self._follow_seal_state_unlocked()

    def _follow_seal_state_unlocked(self) -> None:
        """Poll: seal when the operator sealed; reload a keyring rotated elsewhere."""
        with read_conn(self._engine) as conn:
            flag = self._get(conn, "sealed")
            blob = self._get(conn, "keyring")
        if flag == b"1" and not self._barrier.sealed:
            self._barrier.seal()
            log.info("vault sealed by another process")
        elif self._barrier.sealed and self.source is not None and self.retry.due():
            # Read afresh: unseal-migrate elsewhere may have moved the vault to the source.
            self._config_cache = None
            self._auto_unseal_unlocked()
        elif flag == b"0" and self._barrier.sealed and self._unseal_key is not None:
            self.auto_unseal()
        elif not self._barrier.sealed and blob is not None:
            self._reload_keyring(blob)

    # -- keyring rotation ----------------------------------------------------------------

    def rotate_key(self) -> int:
        """Add a KEK version for all new writes; old versions stay readable."""
        return self._change_keyring(lambda keyring: keyring.rotate())

    def change_keyring(self, change: Callable[[Keyring], T]) -> T:
        """Apply ``change`` to the stored keyring (for transit keys), atomically."""
        return self._change_keyring(change)

    def _change_keyring(self, change: Callable[[Keyring], T]) -> T:
        """Apply ``change`` to the stored keyring and seal it again, in one transaction."""
        root_key = self._barrier.root_key()
        with write_txn(self._engine) as conn:
            # Row lock on PostgreSQL (SQLite's write lock already serialises): two nodes
            # changing the keyring at once must not lose either change.
            blob = self._get(conn, "keyring", lock=True)
            assert blob is not None
            keyring = Keyring.open_with(root_key, blob)
            result = change(keyring)
            sealed = keyring.seal_with(root_key)
            self._put(conn, "keyring", sealed)
        self._barrier.replace_keyring(keyring)
        self._keyring_seen = sealed
        return result

    # -- JWT signing keys ----------------------------------------------------------------

    def signing_keys(self) -> SigningKeySet:
        """The JWT signing keys from the keyring; the first key is made on first use."""
        keyring = self._barrier.keyring()
        if not keyring.signing_keys:

            def add_first(ring: Keyring) -> None:
                if not ring.signing_keys:
                    ring.signing_keys = SigningKeySet.new(time.time()).to_dicts()

            self._change_keyring(add_first)
            keyring = self._barrier.keyring()
        cached = self._signing_cache
        if cached is None or cached[0] is not keyring:
            cached = (keyring, SigningKeySet.from_dicts(keyring.signing_keys))
            self._signing_cache = cached
        return cached[1]

    def rotate_signing_key(self, overlap_seconds: float = 300.0) -> str:
        """A new signing key; the old one stays verifiable for the longest token
        lifetime plus ``overlap_seconds``, then is pruned. Returns the new kid."""
        self.signing_keys()

        def rotate(ring: Keyring) -> str:
            keys = SigningKeySet.from_dicts(ring.signing_keys)
            now = time.time()
            new = keys.rotate(now, overlap_seconds)
            keys.prune(now)
            ring.signing_keys = keys.to_dicts()
            return new.kid

        return self._change_keyring(rotate)

    def refresh_keyring(self) -> None:
        self._reload_keyring(self._keyring_blob())

    def _reload_keyring(self, blob: bytes) -> None:
        if blob == self._keyring_seen:
            return
        try:
            fresh = Keyring.open_with(self._barrier.root_key(), blob)
        except Sealed:  # sealed meanwhile: nothing to reload
            return
        except DecryptionFailed:
            self._rekeyed()
            return
        except Exception:  # a foreign blob: keep what works
            return
        self._barrier.replace_keyring(fresh)
        self._keyring_seen = blob

    def _rekeyed(self) -> None:
        """The stored keyring is sealed under another root key (``unseal-migrate`` ran
        on another node): follow through the unseal source, else seal (fail closed)."""
        self._config_cache = None
        self._barrier.seal()
        self._keyring_seen = None
        if self._auto_unseal_unlocked():
            return
        log.warning("the root key changed (unseal-migrate elsewhere): sealed; unseal again")
