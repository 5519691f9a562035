"""Wiring of the alerts capability from settings (called by the server's build)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine

from keysafe.access.apikeys import KeyService
from keysafe.access.service import TokenService
from keysafe.audit.service import AuditLog
from keysafe.clock import Clock
from keysafe.config import Settings
from keysafe.crypto.keyring import Keyring
from keysafe.monitor.alerts import AlertService
from keysafe.monitor.hooks import KIND_EMAIL, KIND_WEBHOOK, HookStore
from keysafe.monitor.notify import Notifier, SmtpConfig, SmtpNotifier, WebhookNotifier, check_email
from keysafe.monitor.outbox import Outbox
from keysafe.monitor.runner import AnomalyRunner


def build_alerts(
    settings: Settings,
    *,
    engine: Engine,
    clock: Clock,
    keyring: Callable[[], Keyring],
    audit: AuditLog,
    keys: KeyService,
    tokens: TokenService,
) -> tuple[AlertService, AnomalyRunner]:
    """The alert service and the anomaly job's runner. Raises InvalidInput for an
    invalid action table or e-mail recipient (refused at start-up)."""
    hooks = HookStore(engine, keyring, clock)
    notifiers: dict[str, Notifier] = {KIND_WEBHOOK: WebhookNotifier()}
    if settings.smtp_host:
        password = settings.smtp_password
        notifiers[KIND_EMAIL] = SmtpNotifier(
            SmtpConfig(
                host=settings.smtp_host,
                port=settings.smtp_port,
                sender=settings.smtp_from,
                starttls=settings.smtp_starttls,
                username=settings.smtp_username,
                password=password.get_secret_value() if password is not None else None,
            )
        )
    outbox = Outbox(
        engine,
        clock,
        notifiers,
        hooks.secret,
        max_attempts=settings.alert_max_attempts,
        base_delay_seconds=settings.alert_retry_base_seconds,
    )
    alerts = AlertService(
        engine,
        clock,
        audit,
        keys,
        tokens,
        hooks,
        outbox,
        actions=settings.alert_actions,
        email_to=[check_email(a) for a in settings.smtp_to],
    )
    return alerts, AnomalyRunner(engine, clock, alerts)
