"""The seal barrier: holds the keyring in memory while unsealed, nothing while sealed."""

from __future__ import annotations

import threading

from keysafe.crypto import rootkey
from keysafe.crypto.envelope import DecryptionFailed
from keysafe.crypto.keyring import Keyring
from keysafe.errors import InvalidInput, Sealed


class Barrier:
    """Seal state of one process plus the unseal progress of Shamir shares.

    Shares are kept only in memory and only until the threshold is reached or the
    progress is reset.
    """

    def __init__(self) -> None:
        self._keyring: Keyring | None = None
        # Kept while unsealed so a rotated keyring can be sealed again (as Vault keeps
        # its master key); dropped with the keyring on seal.
        self._root_key: bytes | None = None
        self._shares: list[str] = []
        self._lock = threading.Lock()

    @property
    def sealed(self) -> bool:
        return self._keyring is None

    @property
    def progress(self) -> int:
        return len(self._shares)

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
            self._shares.clear()

    def reset_progress(self) -> None:
        with self._lock:
            self._shares.clear()

    def unseal_with_root(self, root_key: bytes, keyring_blob: bytes) -> None:
        """Open the keyring with a root key; raises InvalidInput when the key is wrong."""
        try:
            keyring = Keyring.open_with(root_key, keyring_blob)
        except DecryptionFailed as exc:
            raise InvalidInput("the unseal key does not open this vault") from exc
        with self._lock:
            self._keyring = keyring
            self._root_key = root_key
            self._shares.clear()

    def add_share(self, share: str, threshold: int, keyring_blob: bytes) -> bool:
        """Add one share; unseals when ``threshold`` distinct shares are in.

        Returns True once unsealed. A malformed share raises InvalidInput and keeps the
        progress; a set of shares that does not open the vault resets it.
        """
        try:
            words = rootkey.check_share(share)
        except rootkey.BadShare as exc:
            raise InvalidInput(str(exc)) from exc
        with self._lock:
            if self._keyring is not None:
                return True
            if words not in self._shares:
                self._shares.append(words)
            if len(self._shares) < threshold:
                return False
            shares, self._shares = list(self._shares), []
        try:
            root_key = rootkey.combine(shares)
            keyring = Keyring.open_with(root_key, keyring_blob)
        except (rootkey.BadShare, DecryptionFailed) as exc:
            raise InvalidInput(
                "these shares do not unseal this vault; progress was reset, start again"
            ) from exc
        with self._lock:
            self._keyring = keyring
            self._root_key = root_key
        return True

    def root_key(self) -> bytes:
        root_key = self._root_key
        if root_key is None:
            raise Sealed("the vault is sealed; unseal it with `keysafe operator unseal`")
        return root_key

    def replace_keyring(self, keyring: Keyring) -> None:
        with self._lock:
            self._keyring = keyring
