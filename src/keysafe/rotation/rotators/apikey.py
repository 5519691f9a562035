"""``apikey``: the secret holds a keysafe API key (``ks_live_...``) that a service uses.

- generate: a new well-formed key (``keysafe.crypto.keyformat``), not yet known;
- apply: roll the current key (``KeyService.roll``: same service, policies, allowlist,
  limits; the current key stays valid for the policy's grace period) and give the
  successor the generated value, in one transaction. Re-applying finds the successor
  and does nothing; applying the *current* key again (rollback) revokes its successor
  and lifts its grace period;
- verify: the new key is stored, live and unexpired;
- retire: revoke the old key (it would also die when its grace ends).

Rules (issue 11): the policy is pinned to one service (option ``service``, set by the
rotation service once the setter proved ``manage-keys`` on it); ``apply`` refuses a key
of another service, and a revoked, expired, suspended or already rolled key (a roll
never revives a key); the successor keeps the original key's expiry (a roll never
extends a key's life).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, update

from keysafe.access.apikeys import KeyService
from keysafe.clock import Clock
from keysafe.crypto import keyformat
from keysafe.errors import InvalidInput, KeysafeError, RotationFailed
from keysafe.rotation.rotators.base import RotationContext
from keysafe.store.engine import read_conn
from keysafe.store.tables import api_keys

__all__ = ["ApiKeyRotator", "key_refusal"]

ACTOR = "system:rotation"
MAX_GRACE_SECONDS = 30 * 86400  # KeyService.roll's own limit


def key_refusal(record: Mapping[str, Any] | None, now_us: int) -> str | None:
    """Why the stored key ``record`` may not be rolled; None when it is live."""
    if record is None:
        return "is not a keysafe API key known to this vault"
    if record["revoked_at"] is not None:
        return "is revoked"
    if record["expires_at"] <= now_us:
        return "has expired"
    if record.get("suspended_at") is not None:
        return "is suspended"
    if record["replaced_by"] is not None or record["grace_until"] is not None:
        return "was already rolled"
    return None


class ApiKeyRotator:
    name = "apikey"

    def __init__(self, keys: KeyService, engine: Engine, clock: Clock) -> None:
        self._keys = keys
        self._engine = engine
        self._clock = clock

    def check_options(self, options: Mapping[str, str]) -> None:
        """Only ``service`` (which the rotation service sets itself when storing)."""
        unknown = sorted(set(options) - {"service"})
        if unknown:
            raise InvalidInput(f"the apikey rotator takes no option {', '.join(unknown)}")

    def generate(self, ctx: RotationContext) -> str:
        return keyformat.generate(keyformat.KIND_LIVE_KEY)

    def apply(self, ctx: RotationContext, new: str) -> None:
        try:
            with self._keys.write_txn() as conn:
                found = self._keys.find(new, conn)
                if found is not None:
                    if found["replaced_by"] is not None and found["revoked_at"] is None:
                        self._reinstate(conn, found)
                    return
                old = None if ctx.current is None else self._keys.find(ctx.current, conn)
                refusal = key_refusal(old, self._clock.now_us())
                if old is None or refusal is not None:
                    raise RotationFailed(
                        f"{ctx.path}: the current value is not a live keysafe API key: "
                        f"it {refusal} (a roll never revives a key)"
                    )
                self._check_service(ctx, old)
                grace = min(int(ctx.grace_seconds), MAX_GRACE_SECONDS)
                # The scheduler rolls for the rotation policy; its setter was judged then.
                issued = self._keys.roll(conn, old["id"], grace, ACTOR, holder=None)
                conn.execute(
                    update(api_keys)
                    .where(api_keys.c.id == issued.record["id"])
                    .values(
                        key_hash=self._keys.hash(new),
                        display_prefix=new[:12],
                        # The successor inherits the key's end: a roll never extends it.
                        expires_at=old["expires_at"],
                    )
                )
        except RotationFailed:
            raise
        except KeysafeError as exc:
            raise RotationFailed(f"{ctx.path}: cannot roll the API key: {exc.detail}") from None

    def _check_service(self, ctx: RotationContext, key: Mapping[str, Any]) -> None:
        """RotationFailed unless ``key`` belongs to the service the policy is pinned to."""
        pinned = ctx.options.get("service", "")
        if not pinned:
            raise RotationFailed(
                f"{ctx.path}: the policy names no service: set it again "
                "(keysafe rotation set) so that manage-keys on the key's service is checked"
            )
        try:
            owner = self._keys.service_of(key["id"])
        except KeysafeError:
            owner = ""
        if owner != pinned:
            raise RotationFailed(
                f"{ctx.path}: the API key belongs to another service than {pinned}"
            )

    def _reinstate(self, conn: Any, key: Mapping[str, Any]) -> None:
        """Undo a roll: the successor dies, the key lives on without a grace limit."""
        self._keys.revoke(conn, key["replaced_by"])
        conn.execute(
            update(api_keys)
            .where(api_keys.c.id == key["id"])
            .values(grace_until=None, replaced_by=None)
        )
        self._keys.forget(key["id"])

    def verify(self, ctx: RotationContext, new: str) -> None:
        with read_conn(self._engine) as conn:
            found = self._keys.find(new, conn)
        now = self._clock.now_us()
        if key_refusal(found, now) is not None:
            raise RotationFailed(f"{ctx.path}: the new API key is not live on this vault")

    def retire(self, ctx: RotationContext, old: str) -> None:
        with self._keys.write_txn() as conn:
            found = self._keys.find(old, conn)
            if found is not None and found["revoked_at"] is None:
                self._keys.revoke(conn, found["id"])
