"""Alerts: findings stored and de-duplicated, the automatic action applied, hooks told.

One open alert per (actor, kind, dedup key) within ``DEDUP_WINDOW_SECONDS``: a finding
that matches an open alert whose last finding is that recent extends it (``count``,
``last_at``) instead of raising a new one, and is not notified again.

Automatic actions, per alert kind (``KEYSAFE_ALERT_ACTIONS``, e.g.
``{"rate_spike": "suspend"}``; every kind not named only notifies):

- ``notify``: the hooks, the configured e-mail recipients and the log hear of it;
- ``suspend``: also suspends the actor's API key (refused like a revoked key, on every
  process within the key cache's second, until an admin runs ``keysafe key resume``:
  a false alarm must not break a production service for good), audited as
  ``key:suspend`` by ``system``. Scoped tokens have no suspension: they are revoked
  (``token:revoke``) and the result says so. Never the root token; people are not
  suspended automatically;
- ``require-mfa``: a person's live sessions lose their second factor, so every policy
  rule that wants recent MFA refuses them until they step up again (``keysafe mfa
  verify``); other processes see it within their session cache's second. Machines have
  no second factor: for them it only notifies.

Action names are persisted: only ever add.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, and_, insert, select, update

from keysafe.access.apikeys import KeyService
from keysafe.access.service import TokenService
from keysafe.audit.models import OUTCOME_OK, AuditEvent
from keysafe.audit.service import AuditLog
from keysafe.clock import Clock
from keysafe.errors import Conflict, InvalidInput, NotFound
from keysafe.monitor.anomaly import KINDS, Finding
from keysafe.monitor.hooks import KIND_EMAIL, KIND_WEBHOOK, HookStore
from keysafe.monitor.notify import LogNotifier, Message
from keysafe.monitor.outbox import Outbox
from keysafe.store.engine import read_conn
from keysafe.store.tables import tokens
from keysafe.store.tables_alerts import alerts
from keysafe.store.tables_users import sessions, users
from keysafe.timefmt import iso_us

log = logging.getLogger("keysafe.alerts")

ACTION_NOTIFY = "notify"
ACTION_SUSPEND = "suspend"
ACTION_REQUIRE_MFA = "require-mfa"
ACTIONS = (ACTION_NOTIFY, ACTION_SUSPEND, ACTION_REQUIRE_MFA)

STATUS_OPEN = "open"
STATUS_ACKNOWLEDGED = "acknowledged"
DEDUP_WINDOW_SECONDS = 3600


def action_table(configured: Mapping[str, str] | None) -> dict[str, str]:
    """The action for every kind: ``configured`` over the default ``notify``.
    Raises InvalidInput for an unknown kind or action (refused at start-up)."""
    table = dict.fromkeys(KINDS, ACTION_NOTIFY)
    for kind, action in (configured or {}).items():
        if kind not in table:
            raise InvalidInput(
                f"alert action for unknown kind {kind!r} (kinds: {', '.join(KINDS)})"
            )
        if action not in ACTIONS:
            raise InvalidInput(f"alert action {action!r} is not one of {', '.join(ACTIONS)}")
        table[kind] = action
    return table


@dataclass(frozen=True, slots=True)
class Raised:
    """What ``record`` did with one finding."""

    alert_id: str
    new: bool


class AlertService:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        audit: AuditLog,
        keys: KeyService,
        tokens: TokenService,
        hooks: HookStore,
        outbox: Outbox,
        *,
        actions: Mapping[str, str] | None = None,
        email_to: Sequence[str] = (),
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._audit = audit
        self._keys = keys
        self._tokens = tokens
        self.hooks = hooks
        self.outbox = outbox
        self.actions = action_table(actions)
        self._email_to = tuple(email_to)
        self._log = LogNotifier()

    # -- raising --------------------------------------------------------------------------

    def record(self, conn: Connection, findings: Sequence[Finding]) -> list[Raised]:
        """Store ``findings`` inside the caller's write transaction: merge each into its
        open alert or raise a new one, apply the kind's action, queue notifications."""
        out = []
        for finding in findings:
            existing = self._open_alert(conn, finding)
            if existing is not None:
                conn.execute(
                    update(alerts)
                    .where(alerts.c.id == existing.id)
                    .values(
                        count=alerts.c.count + 1,
                        last_at=max(int(existing.last_at), finding.at),
                    )
                )
                out.append(Raised(existing.id, new=False))
                continue
            out.append(Raised(self._raise(conn, finding), new=True))
        return out

    def _open_alert(self, conn: Connection, f: Finding) -> Any:
        window = DEDUP_WINDOW_SECONDS * 1_000_000
        return conn.execute(
            select(alerts.c.id, alerts.c.last_at)
            .where(
                and_(
                    alerts.c.actor == f.actor,
                    alerts.c.kind == f.kind,
                    alerts.c.dedup_key == f.dedup_key[:256],
                    alerts.c.status == STATUS_OPEN,
                    alerts.c.last_at >= f.at - window,
                )
            )
            .order_by(alerts.c.last_at.desc())
            .limit(1)
        ).first()

    def _raise(self, conn: Connection, f: Finding) -> str:
        alert_id = "alr_" + secrets.token_hex(8)
        action = self.actions[f.kind]
        result = self._apply(conn, action, f, alert_id)
        record = {
            "id": alert_id,
            "kind": f.kind,
            "severity": f.severity,
            "actor": f.actor,
            "dedup_key": f.dedup_key[:256],
            "evidence": orjson.dumps(f.evidence).decode(),
            "first_at": f.at,
            "last_at": f.at,
            "count": 1,
            "status": STATUS_OPEN,
            "action": action,
            "action_result": result,
            "created_at": self._clock.now_us(),
            "acked_by": None,
            "acked_at": None,
        }
        conn.execute(insert(alerts).values(**record))
        self._audit.append_in_txn(
            conn, [self._event(alert_id, "alert:raise", f.actor[:512], f"{f.kind} {action}")]
        )
        body = orjson.dumps(public_alert(record))
        self._log.send(Message("log", body))
        for hook in self.hooks.rows(conn):
            channel = KIND_WEBHOOK if hook.kind == KIND_WEBHOOK else KIND_EMAIL
            self.outbox.enqueue(conn, alert_id, channel, hook.target, body, hook_id=hook.id)
        for address in self._email_to:
            self.outbox.enqueue(conn, alert_id, KIND_EMAIL, address, body)
        return alert_id

    def _apply(self, conn: Connection, action: str, f: Finding, alert_id: str) -> str:
        """Carry out ``action`` on the actor; returns what was done (stored, shown)."""
        if action == ACTION_NOTIFY:
            return "notified"
        actor = f.actor
        if action == ACTION_REQUIRE_MFA:
            return self._require_mfa(conn, actor, alert_id)
        if actor.startswith("key_"):
            return self._suspend_key(conn, actor, f, alert_id)
        if actor.startswith("tok_"):
            row = conn.execute(select(tokens.c.kind).where(tokens.c.id == actor)).first()
            if row is None:
                return "not applied: no such token"
            if row.kind == "root":
                return "not applied: the root token is never suspended automatically"
            self._tokens.revoke(actor, conn)
            detail = f"{actor} revoked by alert {alert_id} (tokens cannot be suspended)"
            self._audit.append_in_txn(conn, [self._event(alert_id, "token:revoke", "", detail)])
            log.warning("alert %s: %s token %s revoked", alert_id, f.kind, actor)
            return "token revoked (tokens cannot be suspended)"
        return "not applied: only API keys and scoped tokens are suspended"

    def _suspend_key(self, conn: Connection, key_id: str, f: Finding, alert_id: str) -> str:
        try:
            self._keys.suspend(conn, key_id, f"alert {alert_id}: {f.kind}")
        except NotFound:
            return "not applied: no such API key"
        except Conflict as exc:
            return f"not applied: {exc.detail}"
        self._audit.append_in_txn(
            conn,
            [self._event(alert_id, "key:suspend", "", f"{key_id} suspended by alert {alert_id}")],
        )
        log.warning("alert %s: %s key %s suspended", alert_id, f.kind, key_id)
        return f"suspended: key suspended until an admin runs `keysafe key resume {key_id}`"

    def _require_mfa(self, conn: Connection, actor: str, alert_id: str) -> str:
        if not actor.startswith("user:"):
            return "not applied: only people have a second factor (notified)"
        user = select(users.c.id).where(users.c.name == actor.removeprefix("user:"))
        done = conn.execute(
            update(sessions)
            .where(sessions.c.user_id.in_(user.scalar_subquery()), sessions.c.revoked_at.is_(None))
            .values(mfa_at=None)
        )
        self._audit.append_in_txn(
            conn,
            [
                self._event(
                    alert_id, "session:require-mfa", "", f"{actor} must step up (alert {alert_id})"
                )
            ],
        )
        log.warning("alert %s: %s must prove a second factor again", alert_id, actor)
        return f"step-up required on {int(done.rowcount or 0)} live session(s)"

    def _event(self, rid: str, operation: str, path: str, detail: str) -> AuditEvent:
        return AuditEvent(
            self._clock.now_us(), rid, "system", "server", operation, path, OUTCOME_OK, detail
        )

    # -- reading and acknowledging -------------------------------------------------------

    def list_alerts(
        self, since_us: int | None = None, status: str | None = None, limit: int = 500
    ) -> list[dict[str, Any]]:
        """Alerts whose last finding is at or after ``since_us``, newest first."""
        query = select(alerts).order_by(alerts.c.last_at.desc()).limit(limit)
        if since_us is not None:
            query = query.where(alerts.c.last_at >= since_us)
        if status is not None:
            if status not in (STATUS_OPEN, STATUS_ACKNOWLEDGED):
                raise InvalidInput("status is open or acknowledged")
            query = query.where(alerts.c.status == status)
        with read_conn(self._engine) as conn:
            return [public_alert(dict(r)) for r in conn.execute(query).mappings()]

    def get(self, alert_id: str) -> dict[str, Any]:
        with read_conn(self._engine) as conn:
            row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).mappings().first()
        if row is None:
            raise NotFound(f"no alert {alert_id}")
        return public_alert(dict(row))

    def acknowledge(self, conn: Connection, alert_id: str, who: str) -> dict[str, Any]:
        """Mark an open alert acknowledged (the next finding raises a new one).
        Raises NotFound, or Conflict when it was already acknowledged."""
        row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).mappings().first()
        if row is None:
            raise NotFound(f"no alert {alert_id}")
        if row["status"] != STATUS_OPEN:
            raise Conflict(f"alert {alert_id} is already acknowledged")
        now = self._clock.now_us()
        conn.execute(
            update(alerts)
            .where(alerts.c.id == alert_id)
            .values(status=STATUS_ACKNOWLEDGED, acked_by=who, acked_at=now)
        )
        return public_alert(
            {**dict(row), "status": STATUS_ACKNOWLEDGED, "acked_by": who, "acked_at": now}
        )

    def close(self) -> None:
        self.outbox.close()


def public_alert(row: Mapping[str, Any]) -> dict[str, Any]:
    """The alert document shown by the API and sent to hooks (no secret values: the
    evidence holds counts, addresses, networks and paths)."""
    return {
        "id": row["id"],
        "kind": row["kind"],
        "severity": row["severity"],
        "actor": row["actor"],
        "evidence": orjson.loads(row["evidence"]),
        "first_at": iso_us(row["first_at"]),
        "last_at": iso_us(row["last_at"]),
        "count": row["count"],
        "status": row["status"],
        "action": row["action"],
        "action_result": row["action_result"],
        "acked_by": row["acked_by"],
        "acked_at": iso_us(row["acked_at"]),
    }
