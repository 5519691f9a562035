"""The notification outbox: queued in the alert's transaction, delivered off the
request path, retried with exponential backoff and jitter, then dead-lettered.

Rows move ``pending`` -> ``delivered``, or -> ``dead`` after ``max_attempts`` failed
attempts (the dead-letter record keeps the body, the attempts and the last error).
A process claims a due row with a conditional UPDATE (a lease), so several server
processes never deliver the same row at the same time; a crashed deliverer's lease
expires and the row is retried (delivery is at least once).
"""

from __future__ import annotations

import logging
import random
import secrets
import threading
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection, Engine, and_, insert, or_, select, update

from keysafe.clock import Clock
from keysafe.errors import Unavailable
from keysafe.monitor.notify import DeliveryFailed, Message, Notifier
from keysafe.store.engine import read_conn, write_txn
from keysafe.store.tables_alerts import alert_outbox
from keysafe.timefmt import iso_us

log = logging.getLogger("keysafe.alerts")

STATUS_PENDING = "pending"
STATUS_DELIVERED = "delivered"
STATUS_DEAD = "dead"
LEASE_SECONDS = 120
_US = 1_000_000


class Outbox:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        notifiers: Mapping[str, Notifier],
        secret_of: Callable[[str], bytes | None],
        *,
        max_attempts: int = 6,
        base_delay_seconds: float = 5.0,
        max_delay_seconds: float = 3600.0,
        rng: random.Random | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._notifiers = notifiers
        self._secret_of = secret_of
        self.max_attempts = max_attempts
        self.base_delay = base_delay_seconds
        self.max_delay = max_delay_seconds
        self._rng = rng or random.SystemRandom()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()

    # -- queueing -------------------------------------------------------------------------

    def enqueue(
        self,
        conn: Connection,
        alert_id: str,
        channel: str,
        target: str,
        body: bytes,
        hook_id: str | None = None,
    ) -> str:
        """Queue one delivery inside the caller's transaction."""
        now = self._clock.now_us()
        row_id = "msg_" + secrets.token_hex(8)
        conn.execute(
            insert(alert_outbox).values(
                id=row_id,
                alert_id=alert_id,
                channel=channel,
                hook_id=hook_id,
                target=target,
                body=body.decode(),
                status=STATUS_PENDING,
                attempts=0,
                next_at=now,
                claimed_until=None,
                last_error="",
                created_at=now,
                done_at=None,
            )
        )
        return row_id

    def backoff_seconds(self, attempts: int) -> float:
        """Delay before attempt ``attempts + 1``: base * 2^(attempts-1), capped, with
        +-50% jitter so that many failed deliveries do not retry in lockstep."""
        delay = min(self.base_delay * 2.0 ** max(attempts - 1, 0), self.max_delay)
        return float(delay * self._rng.uniform(0.5, 1.5))

    # -- delivering -----------------------------------------------------------------------

    def drain_once(self, limit: int = 20) -> int:
        """Deliver up to ``limit`` due messages; returns how many were handled
        (delivered, rescheduled or dead-lettered). Never raises for a failed delivery."""
        now = self._clock.now_us()
        with read_conn(self._engine) as conn:
            due = [
                r.id
                for r in conn.execute(
                    select(alert_outbox.c.id)
                    .where(alert_outbox.c.status == STATUS_PENDING, alert_outbox.c.next_at <= now)
                    .order_by(alert_outbox.c.next_at)
                    .limit(limit)
                )
            ]
        handled = 0
        for row_id in due:
            row = self._claim(row_id)
            if row is not None:
                self._deliver(row)
                handled += 1
        return handled

    def _claim(self, row_id: str) -> Any:
        now = self._clock.now_us()
        c = alert_outbox.c
        with write_txn(self._engine) as conn:
            claimed = conn.execute(
                update(alert_outbox)
                .where(
                    and_(
                        c.id == row_id,
                        c.status == STATUS_PENDING,
                        c.next_at <= now,
                        or_(c.claimed_until.is_(None), c.claimed_until < now),
                    )
                )
                .values(claimed_until=now + LEASE_SECONDS * _US)
            ).rowcount
            if claimed != 1:
                return None  # another process took it
            return conn.execute(select(alert_outbox).where(c.id == row_id)).first()

    def _deliver(self, row: Any) -> None:
        error = ""
        try:
            secret = None
            if row.hook_id is not None and row.channel == "webhook":
                secret = self._secret_of(row.hook_id)
                if secret is None:
                    raise DeliveryFailed("the hook was removed")
            notifier = self._notifiers.get(row.channel)
            if notifier is None:
                raise DeliveryFailed(f"no {row.channel} notifier is configured")
            notifier.send(Message(row.target, row.body.encode(), secret))
        except Unavailable:
            # Sealed (the signing secret cannot be opened) or the database is down: not
            # the receiver's fault, so the attempt does not count. Retry after the lease.
            return
        except DeliveryFailed as exc:
            error = str(exc) or "delivery failed"
        except Exception as exc:  # a notifier bug must not stop the queue
            error = f"{type(exc).__name__}: {exc}"[:300]
        now = self._clock.now_us()
        attempts = int(row.attempts) + 1
        values: dict[str, Any] = {"attempts": attempts, "claimed_until": None}
        if not error:
            values.update(status=STATUS_DELIVERED, done_at=now, last_error="")
        elif attempts >= self.max_attempts:
            values.update(status=STATUS_DEAD, done_at=now, last_error=error)
            log.error(
                "alert %s: %s delivery to %s dead-lettered after %d attempts: %s",
                row.alert_id,
                row.channel,
                row.target,
                attempts,
                error,
            )
        else:
            delay = self.backoff_seconds(attempts)
            values.update(next_at=now + int(delay * _US), last_error=error)
            log.warning(
                "alert %s: %s delivery to %s failed (attempt %d, retry in %.0f s): %s",
                row.alert_id,
                row.channel,
                row.target,
                attempts,
                delay,
                error,
            )
        with write_txn(self._engine) as conn:
            conn.execute(update(alert_outbox).where(alert_outbox.c.id == row.id).values(**values))

    def messages(self, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Queued, delivered or dead messages, newest first."""
        query = select(alert_outbox).order_by(alert_outbox.c.created_at.desc()).limit(limit)
        if status is not None:
            query = query.where(alert_outbox.c.status == status)
        with read_conn(self._engine) as conn:
            return [_public(dict(r)) for r in conn.execute(query).mappings()]

    # -- the background deliverer ---------------------------------------------------------

    def kick(self) -> None:
        """Wake the deliverer thread (starting it on first use); returns at once."""
        with self._thread_lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._run, name="keysafe-alert-outbox", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=2.0)
            self._wake.clear()
            try:
                while not self._stop.is_set() and self.drain_once() > 0:
                    pass
            except Exception as exc:  # a database blip: try again on the next wake
                log.warning("alert outbox: %s", exc)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=10)


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "alert_id": row["alert_id"],
        "channel": row["channel"],
        "hook_id": row["hook_id"],
        "target": row["target"],
        "status": row["status"],
        "attempts": row["attempts"],
        "last_error": row["last_error"],
        "created_at": iso_us(row["created_at"]),
        "next_at": iso_us(row["next_at"]),
        "done_at": iso_us(row["done_at"]),
    }
