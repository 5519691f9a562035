"""``unseal-migrate``: move a vault between Shamir shares and an unseal source.

Both ways draw a new root key and seal the same keyring under it (the data keys do not
change), so the old shares (or the old wrapped key) open nothing any more. Everything
is prepared first (the source's wrap included); one transaction then swaps the keyring,
the wrapped root key and the seal configuration together, after checking that nobody
changed the keyring meanwhile: a failure at any step leaves the vault as it was.
Other processes notice the new keyring and follow (through their source, or by sealing).
"""

from __future__ import annotations

import hmac
import logging

import orjson
from sqlalchemy import delete

from keysafe.crypto import rootkey
from keysafe.crypto.envelope import DecryptionFailed
from keysafe.crypto.keyring import Keyring
from keysafe.errors import Conflict, InvalidInput, NotInitialized
from keysafe.store.engine import write_txn
from keysafe.store.invalidations import KIND_SEAL
from keysafe.store.tables import sys_state
from keysafe.system.service import AUTO_MODES, MODE_SHAMIR, InitResult, SystemService

__all__ = ["TO_SHAMIR", "TO_SOURCE", "migrate"]

log = logging.getLogger("keysafe.system")

TO_SHAMIR = "shamir"
TO_SOURCE = "source"


def migrate(
    system: SystemService, to: str, shares: list[str], new_shares: int, new_threshold: int
) -> InitResult:
    """Move the (unsealed) vault to ``to``; ``shares`` are its current unseal shares
    (to the source) or recovery shares (to Shamir). Returns the new shares, shown once.
    Raises InvalidInput for wrong shares or a vault already there, UnsealSourceFailed
    when the source cannot wrap, Conflict when the keyring changed meanwhile."""
    if not 1 <= new_threshold <= new_shares <= 16:
        raise InvalidInput("need 1 <= threshold <= shares <= 16")
    config = system.seal_config()
    if config is None:
        raise NotInitialized("the vault is not initialised; run `keysafe operator init`")
    if not shares:
        raise InvalidInput("give the current shares (a threshold of them)")
    mode = config["mode"]
    try:
        secret = rootkey.combine([rootkey.check_share(s) for s in shares])
    except rootkey.BadShare as exc:
        raise InvalidInput(f"{exc}") from exc
    old_blob = system._keyring_blob()
    if to == TO_SOURCE:
        if mode != MODE_SHAMIR:
            raise InvalidInput(f"this vault is not on Shamir shares (it uses {mode})")
        if system.source is None:
            raise InvalidInput("no unseal source configured on this server (KEYSAFE_SEAL)")
        try:
            keyring = Keyring.open_with(secret, old_blob)
        except DecryptionFailed as exc:
            raise InvalidInput("these shares do not unseal this vault") from exc
    elif to == TO_SHAMIR:
        if mode not in AUTO_MODES:
            raise InvalidInput(f"this vault does not use an unseal source (it uses {mode})")
        keyring = Keyring.open_with(system._barrier.root_key(), old_blob)
        if not rootkey.is_recovery_key(secret, keyring.recovery_digest):
            raise InvalidInput("these are not this vault's recovery shares")
    else:
        raise InvalidInput("migrate to 'shamir' or 'source'")

    new_root = rootkey.new_root_key()
    if to == TO_SOURCE:
        assert system.source is not None
        recovery_key = rootkey.new_root_key()
        keyring.recovery_digest = rootkey.recovery_digest(recovery_key)
        texts = rootkey.split(recovery_key, new_shares, new_threshold)
        wrapped: bytes | None = system.source.wrap(new_root)  # may fail: nothing written
        new_config = {
            "mode": system.source.kind,
            "shares": new_shares,
            "threshold": new_threshold,
            "recovery": True,
        }
    else:
        keyring.recovery_digest = None
        texts = rootkey.split(new_root, new_shares, new_threshold)
        wrapped = None
        new_config = {"mode": MODE_SHAMIR, "shares": new_shares, "threshold": new_threshold}
    new_blob = keyring.seal_with(new_root)

    with system._state_lock, write_txn(system._engine) as conn:
        current = system._get(conn, "keyring", lock=True)
        if current is None or not hmac.compare_digest(current, old_blob):
            raise Conflict("the keyring changed meanwhile (a key rotation?); run it again")
        system._put(conn, "keyring", new_blob)
        system._put(conn, "seal_config", orjson.dumps(new_config))
        if wrapped is not None:
            system._put(conn, "root_wrapped", wrapped)
        else:
            conn.execute(delete(sys_state).where(sys_state.c.key == "root_wrapped"))
        system.announcer.announce(conn, KIND_SEAL, "")
    # Committed: this process carries on under the new root key.
    system._config_cache = new_config
    system._barrier.unseal_with_root(new_root, new_blob)
    system._keyring_seen = new_blob
    system.retry.succeeded()
    log.warning("unseal-migrate: the vault now unseals with %s", new_config["mode"])
    return InitResult("", texts, recovery=to == TO_SOURCE)
