"""Alert hooks: signed webhooks and e-mail addresses that receive every new alert.

A webhook's signing secret is sealed under the keyring (envelope encryption bound to
the hook id), never stored in clear and never shown again after it was given.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select

from keysafe.clock import Clock
from keysafe.crypto.keyring import Envelope, Keyring
from keysafe.errors import InvalidInput, NotFound
from keysafe.monitor.notify import check_email
from keysafe.netloc import check_webhook_url
from keysafe.store.engine import read_conn
from keysafe.store.tables_alerts import alert_hooks, alert_outbox
from keysafe.timefmt import iso_us

KIND_WEBHOOK = "webhook"
KIND_EMAIL = "email"
MIN_SECRET_BYTES = 16
MAX_SECRET_BYTES = 1024
MAX_HOOKS = 100


def _context(hook_id: str) -> bytes:
    return b"alert-hook:" + hook_id.encode()


class HookStore:
    def __init__(self, engine: Engine, keyring: Callable[[], Keyring], clock: Clock) -> None:
        self._engine = engine
        self._keyring = keyring
        self._clock = clock

    def add_webhook(
        self, conn: Connection, url: str, secret: bytes, description: str, creator: str
    ) -> dict[str, Any]:
        """Register a webhook; ``secret`` (16 to 1024 bytes) signs every delivery.
        Raises InvalidInput for a non-HTTPS URL (loopback excepted) or a weak secret."""
        check_webhook_url(url)
        secret = secret.strip()
        if not MIN_SECRET_BYTES <= len(secret) <= MAX_SECRET_BYTES:
            raise InvalidInput(
                f"a webhook signing secret holds {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes"
            )
        hook_id = "hook_" + secrets.token_hex(8)
        envelope = self._keyring().encrypt(secret, _context(hook_id))
        return self._insert(
            conn,
            hook_id,
            KIND_WEBHOOK,
            url,
            description,
            creator,
            kek_version=envelope.kek_version,
            wrapped_dek=envelope.wrapped_dek,
            sealed_secret=envelope.ciphertext,
        )

    def add_email(
        self, conn: Connection, address: str, description: str, creator: str
    ) -> dict[str, Any]:
        """Register an address; alerts reach it through the configured SMTP server."""
        check_email(address)
        return self._insert(
            conn, "hook_" + secrets.token_hex(8), KIND_EMAIL, address, description, creator
        )

    def _insert(
        self,
        conn: Connection,
        hook_id: str,
        kind: str,
        target: str,
        description: str,
        creator: str,
        **sealed: Any,
    ) -> dict[str, Any]:
        count = len(conn.execute(select(alert_hooks.c.id)).all())
        if count >= MAX_HOOKS:
            raise InvalidInput(f"at most {MAX_HOOKS} alert hooks")
        record = {
            "id": hook_id,
            "kind": kind,
            "target": target,
            "description": description[:1024],
            "created_at": self._clock.now_us(),
            "created_by": creator,
            "kek_version": None,
            "wrapped_dek": None,
            "sealed_secret": None,
            **sealed,
        }
        conn.execute(insert(alert_hooks).values(**record))
        return _public(record)

    def remove(self, conn: Connection, hook_id: str) -> None:
        """Delete a hook and its queued deliveries (NotFound if unknown); delivered and
        dead-lettered records stay."""
        if conn.execute(delete(alert_hooks).where(alert_hooks.c.id == hook_id)).rowcount == 0:
            raise NotFound(f"no alert hook {hook_id}")
        conn.execute(
            delete(alert_outbox).where(
                alert_outbox.c.hook_id == hook_id, alert_outbox.c.status == "pending"
            )
        )

    def list_hooks(self) -> list[dict[str, Any]]:
        with read_conn(self._engine) as conn:
            rows = conn.execute(select(alert_hooks).order_by(alert_hooks.c.created_at)).mappings()
            return [_public(dict(r)) for r in rows]

    def rows(self, conn: Connection) -> list[Any]:
        """Every hook row (with its sealed secret), for queuing deliveries."""
        return list(conn.execute(select(alert_hooks)))

    def secret(self, hook_id: str) -> bytes | None:
        """The opened signing secret of a webhook; None if the hook is gone (removed
        after the delivery was queued) or has no secret (e-mail)."""
        with read_conn(self._engine) as conn:
            row = conn.execute(select(alert_hooks).where(alert_hooks.c.id == hook_id)).first()
        if row is None or row.sealed_secret is None:
            return None
        envelope = Envelope(
            kek_version=int(row.kek_version),
            wrapped_dek=bytes(row.wrapped_dek),
            ciphertext=bytes(row.sealed_secret),
        )
        return self._keyring().decrypt(envelope, _context(hook_id))

    def exists(self, hook_id: str) -> bool:
        with read_conn(self._engine) as conn:
            found = conn.execute(select(alert_hooks.c.id).where(alert_hooks.c.id == hook_id))
            return found.first() is not None


def _public(record: dict[str, Any]) -> dict[str, Any]:
    """A hook without its sealed secret."""
    return {
        "id": record["id"],
        "kind": record["kind"],
        "target": record["target"],
        "description": record["description"],
        "signed": record.get("sealed_secret") is not None,
        "created_at": iso_us(record["created_at"]),
        "created_by": record["created_by"],
    }
