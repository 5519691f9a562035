"""Unsealing through an unseal source (``keysafe.unseal``): init with recovery shares,
unseal at start (or after an operator's seal, with the recovery shares), and the checks
that recovery shares are this vault's.

Recovery shares split a recovery key whose digest is sealed in the keyring; they never
open the keyring themselves: the root key always comes from the source.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from keysafe.audit.service import anchor_chain
from keysafe.crypto import rootkey
from keysafe.crypto.envelope import DecryptionFailed
from keysafe.crypto.keyring import Keyring
from keysafe.errors import InvalidInput, UnsealSourceFailed
from keysafe.store.engine import read_conn, write_txn

if TYPE_CHECKING:
    from keysafe.system.service import InitResult, SystemService

log = logging.getLogger("keysafe.system")


def initialize(
    system: SystemService, root_key: bytes, keyring: Keyring, shares: int, threshold: int
) -> InitResult:
    assert system.source is not None
    recovery_key = rootkey.new_root_key()
    keyring.recovery_digest = rootkey.recovery_digest(recovery_key)
    texts = rootkey.split(recovery_key, shares, threshold)
    # Before anything is written: a source that fails leaves no half-made vault.
    wrapped = system.source.wrap(root_key)
    config = {"mode": system.source.kind, "shares": shares, "threshold": threshold}
    config["recovery"] = True
    with write_txn(system._engine) as conn:
        system._claim(conn, config)
        system._put(conn, "keyring", keyring.seal_with(root_key))
        system._put(conn, "root_wrapped", wrapped)
        system._put(conn, "sealed", b"1")
        issued = system._tokens.mint_root(conn, keyring.token_hmac_key)
        anchor_chain(conn, keyring.audit_hmac_key)
    system._config_cache = config
    system.auto_unseal()
    from keysafe.system import service  # at call time: service imports this module

    return service.InitResult(issued.token, texts, recovery=True)


def root_for_recovery(system: SystemService, recovery_key: bytes) -> bytes:
    """The root key from the source, once ``recovery_key`` proves to be the vault's
    recovery key; raises DecryptionFailed otherwise, UnsealSourceFailed when the
    source fails."""
    root_key = unwrap_root(system)
    keyring = Keyring.open_with(root_key, system._keyring_blob())
    if not rootkey.is_recovery_key(recovery_key, keyring.recovery_digest):
        raise DecryptionFailed("not the recovery key")
    return root_key


def unwrap_root(system: SystemService) -> bytes:
    config = system.seal_config() or {}
    mode = config.get("mode")
    if system.source is None or system.source.kind != mode:
        raise UnsealSourceFailed(
            f"this vault's root key is wrapped by {mode}, and this node has "
            f"{'no unseal source' if system.source is None else system.source.kind} "
            "configured (KEYSAFE_SEAL)",
            permanent=True,
        )
    with read_conn(system._engine) as conn:
        wrapped = system._get(conn, "root_wrapped")
    if wrapped is None:
        raise UnsealSourceFailed("the wrapped root key is missing", permanent=True)
    return system.source.unwrap(wrapped)


def checked_root(system: SystemService, recovery_key: bytes) -> bytes:
    """While unsealed: the root key in memory, if ``recovery_key`` is the vault's."""
    if not rootkey.is_recovery_key(recovery_key, system._barrier.keyring().recovery_digest):
        raise DecryptionFailed("not the recovery key")
    return system._barrier.root_key()


def source_unseal(system: SystemService) -> bool:
    """Unseal through the unseal source; on failure stay sealed, say why (log line,
    seal status, health) and let the poller retry with backoff."""
    if not system.retry.due():  # every caller (workers, job process) keeps the backoff
        return False
    with read_conn(system._engine) as conn:
        if system._get(conn, "sealed_by_operator") == b"1":
            system.retry.blocked(
                "sealed by an operator: unseal with the recovery shares (keysafe operator unseal)"
            )
            return False
    try:
        root_key = unwrap_root(system)
        system._barrier.unseal_with_root(root_key, system._keyring_blob())
    except UnsealSourceFailed as exc:
        system.retry.failed(exc)
        return False
    except InvalidInput:
        system.retry.failed(UnsealSourceFailed("the unwrapped root key does not open this vault"))
        return False
    system.retry.succeeded()
    system._set_sealed_flag(False)
    log.warning("vault unsealed by %s", system.source.describe() if system.source else "?")
    return True
