"""Notifiers: where an alert document goes (a signed webhook, e-mail, the log).

Delivery is never done on a request: alerts are queued in the outbox table and a
background drainer calls these (see keysafe.monitor.outbox). A notifier raises
``DeliveryFailed`` when the receiver did not take the message; the drainer retries.

Webhook signature (persisted contract with receivers: only ever add schemes)::

    X-Keysafe-Timestamp: <unix seconds>
    X-Keysafe-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>

Receivers recompute the HMAC over the raw body, compare in constant time and refuse
timestamps older than a few minutes (replays); ``verify_signature`` does exactly that.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import smtplib
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Protocol

import httpx
import orjson

from keysafe.errors import InvalidInput
from keysafe.netloc import check_webhook_url

log = logging.getLogger("keysafe.alerts")

SIGNATURE_HEADER = "X-Keysafe-Signature"
TIMESTAMP_HEADER = "X-Keysafe-Timestamp"
SIGNATURE_SCHEME = "sha256="


class DeliveryFailed(Exception):
    """The receiver did not take the message (internal: the drainer retries it)."""


@dataclass(frozen=True, slots=True)
class Message:
    """One notification: the alert document (JSON bytes) and where it goes."""

    target: str
    body: bytes
    secret: bytes | None = None  # webhook signing secret, opened from its seal


class Notifier(Protocol):
    def send(self, message: Message) -> None:
        """Deliver ``message``; raise DeliveryFailed if the receiver did not take it."""
        ...


# -- signatures -----------------------------------------------------------------------


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>`` over ``timestamp + "." + body``."""
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256)
    return SIGNATURE_SCHEME + mac.hexdigest()


def verify_signature(
    secret: bytes,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    tolerance_seconds: int = 300,
    now: float | None = None,
) -> bool:
    """True when ``signature`` signs ``timestamp`` and ``body`` under ``secret`` and the
    timestamp is within ``tolerance_seconds`` of ``now`` (constant-time compare)."""
    if not timestamp.isdigit():
        return False
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)


# -- targets --------------------------------------------------------------------------


def check_email(address: str) -> str:
    """A plausible single address (no header injection). Raises InvalidInput."""
    local, at, domain = address.partition("@")
    if (
        not at
        or not local
        or "." not in domain
        or len(address) > 254
        or any(c in address for c in " \r\n,;<>")
    ):
        raise InvalidInput(f"{address!r} is not an e-mail address")
    return address


# -- notifiers ------------------------------------------------------------------------


class WebhookNotifier:
    """POSTs the alert document, signed; any 2xx is delivery."""

    def __init__(self, client: httpx.Client | None = None, timeout: float = 5.0) -> None:
        self._client = client or httpx.Client(timeout=timeout, follow_redirects=False)

    def send(self, message: Message) -> None:
        if message.secret is None:
            raise DeliveryFailed("the hook has no signing secret")
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "keysafe-alerts",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(message.secret, timestamp, message.body),
        }
        try:
            resp = self._client.post(
                check_webhook_url(message.target), content=message.body, headers=headers
            )
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}"[:300]) from exc
        if not 200 <= resp.status_code < 300:
            raise DeliveryFailed(f"HTTP {resp.status_code}")

    def close(self) -> None:
        self._client.close()


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int = 25
    sender: str = "keysafe@localhost"
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    timeout: float = 10.0


class SmtpNotifier:
    """Sends the alert as a plain-text e-mail through the configured SMTP server."""

    def __init__(self, config: SmtpConfig) -> None:
        self._config = config

    def send(self, message: Message) -> None:
        cfg = self._config
        doc: dict[str, Any] = orjson.loads(message.body)
        mail = EmailMessage()
        mail["From"] = cfg.sender
        mail["To"] = check_email(message.target)
        mail["Subject"] = (
            f"[keysafe] {doc.get('severity', '?')} {doc.get('kind', 'alert')}"
            f" for {doc.get('actor', '?')}"
        )
        mail.set_content(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
        try:
            with smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout) as smtp:
                if cfg.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if cfg.username and cfg.password:
                    smtp.login(cfg.username, cfg.password)
                smtp.send_message(mail)
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryFailed(f"SMTP: {type(exc).__name__}: {exc}"[:300]) from exc


class LogNotifier:
    """Writes the alert to the server log (always on; needs no delivery queue)."""

    def send(self, message: Message) -> None:
        doc: dict[str, Any] = orjson.loads(message.body)
        log.warning(
            "alert %s: %s %s for %s: %s",
            doc.get("id"),
            doc.get("severity"),
            doc.get("kind"),
            doc.get("actor"),
            orjson.dumps(doc.get("evidence", {})).decode(),
        )
