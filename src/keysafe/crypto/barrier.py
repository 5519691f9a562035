"""The seal barrier: holds the keyring in memory while unsealed, nothing while sealed.

Shamir unseal progress belongs to one unseal attempt, named by a random nonce: the first
well-formed share starts the attempt and its nonce is returned to whoever sent it (never
shown in the public seal status); while the attempt runs, further shares and a reset must
present that nonce, so nobody else can reset or spoil the progress (a wrong nonce changes
nothing). An attempt with no new share for ``attempt_seconds`` is dropped, so a stray
attempt cannot block unsealing for ever; restarting the process drops it too.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable

from keysafe.crypto import rootkey
from keysafe.crypto.envelope import DecryptionFailed
from keysafe.crypto.keyring import Keyring
from keysafe.errors import Conflict, InvalidInput, Sealed

UNSEAL_ATTEMPT_SECONDS = 15 * 60


class Barrier:
    """Seal state of one process plus the unseal progress of Shamir shares.

    Shares are kept only in memory and only until the threshold is reached or the
    progress is reset.
    """

    def __init__(self, attempt_seconds: float = UNSEAL_ATTEMPT_SECONDS) -> None:
        self._keyring: Keyring | None = None
        # Kept while unsealed so a rotated keyring can be sealed again (as Vault keeps
        # its master key); dropped with the keyring on seal.
        self._root_key: bytes | None = None
        self._shares: list[str] = []
        self._nonce: str | None = None  # the running unseal attempt's, while shares are in
        self._last_share = 0.0
        self._attempt_seconds = attempt_seconds
        self._now = time.monotonic
        self._lock = threading.Lock()

    @property
    def sealed(self) -> bool:
        return self._keyring is None

    @property
    def progress(self) -> int:
        with self._lock:
            self._expire_attempt()
            return len(self._shares)

    @property
    def nonce(self) -> str | None:
        """The running unseal attempt's nonce (only for its share holders' replies)."""
        with self._lock:
            self._expire_attempt()
            return self._nonce

    def keyring(self) -> Keyring:
        """The keyring; raises Sealed while sealed."""
        keyring = self._keyring
        if keyring is None:
            raise Sealed("the vault is sealed; unseal it with `keysafe operator unseal`")
        return keyring

    def seal(self) -> None:
        with self._lock:
            self._keyring = None
            self._root_key = None
            self._clear_attempt()

    def reset_progress(self, nonce: str | None) -> None:
        """Drop the running attempt's shares; raises Conflict unless ``nonce`` is its
        nonce (nothing running: nothing to do)."""
        with self._lock:
            self._expire_attempt()
            if self._nonce is None:
                return
            self._check_nonce(nonce)
            self._clear_attempt()

    def unseal_with_root(self, root_key: bytes, keyring_blob: bytes) -> None:
        """Open the keyring with a root key; raises InvalidInput when the key is wrong."""
        try:
            keyring = Keyring.open_with(root_key, keyring_blob)
        except DecryptionFailed as exc:
            raise InvalidInput("the unseal key does not open this vault") from exc
        with self._lock:
            self._keyring = keyring
            self._root_key = root_key
            self._clear_attempt()

    def add_share(
        self,
        share: str,
        threshold: int,
        keyring_blob: bytes,
        nonce: str | None = None,
        *,
        opener: Callable[[bytes], bytes] | None = None,
    ) -> bool:
        """Add one share; unseals when ``threshold`` distinct shares are in.

        The first share starts an attempt (``nonce`` then names it); while one runs,
        ``nonce`` must be its nonce, else Conflict and nothing changes. Returns True once
        unsealed. A malformed share raises InvalidInput and keeps the progress; a set of
        shares that does not open the vault ends the attempt. ``opener`` turns the
        rebuilt secret into the root key (recovery shares: it asks the unseal source and
        raises DecryptionFailed when they are not the vault's recovery key).
        """
        try:
            words = rootkey.check_share(share)
        except rootkey.BadShare as exc:
            raise InvalidInput(str(exc)) from exc
        with self._lock:
            if self._keyring is not None:
                return True
            self._expire_attempt()
            if self._nonce is None:
                self._nonce = secrets.token_hex(16)
            else:
                self._check_nonce(nonce)
            self._last_share = self._now()
            if words not in self._shares:
                self._shares.append(words)
            if len(self._shares) < threshold:
                return False
            shares = list(self._shares)
            self._clear_attempt()
        try:
            secret = rootkey.combine(shares)
            root_key = opener(secret) if opener is not None else secret
            keyring = Keyring.open_with(root_key, keyring_blob)
        except (rootkey.BadShare, DecryptionFailed) as exc:
            raise InvalidInput(
                "these shares do not unseal this vault; progress was reset, start again"
            ) from exc
        with self._lock:
            self._keyring = keyring
            self._root_key = root_key
        return True

    def _check_nonce(self, nonce: str | None) -> None:
        assert self._nonce is not None
        if not hmac.compare_digest((nonce or "").encode(), self._nonce.encode()):
            raise Conflict(
                "an unseal attempt is in progress; give its nonce (returned with its first "
                "share) to add a share or reset it"
            )

    def _expire_attempt(self) -> None:
        if self._nonce is not None and self._now() - self._last_share > self._attempt_seconds:
            self._clear_attempt()

    def _clear_attempt(self) -> None:
        self._shares.clear()
        self._nonce = None

    def root_key(self) -> bytes:
        root_key = self._root_key
        if root_key is None:
            raise Sealed("the vault is sealed; unseal it with `keysafe operator unseal`")
        return root_key

    def replace_keyring(self, keyring: Keyring) -> None:
        with self._lock:
            self._keyring = keyring
