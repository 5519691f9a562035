"""``webhook``: an HTTPS endpoint of the operator's takes the new value.

Each step is one ``POST`` of JSON to ``url``::

    {"path": ..., "step": "apply"|"verify"|"retire", "id": <run id>, "timestamp": <unix s>,
     "value": ...            (apply only: the value to accept),
     "value_sha256": ...     (verify and retire: hex SHA-256 of the value concerned),
     "rollback": true|false  (apply: restoring the previous value)}

signed with HMAC-SHA256 under the value of the keysafe secret named by
``signing-secret``: header ``X-Keysafe-Signature: t=<timestamp>,v1=<hex>`` over
``<timestamp>.`` + the exact body bytes (the receiver checks it in constant time and
refuses old timestamps). The endpoint confirms with a 2xx status and the JSON body
``{"ok": true}``; anything else fails the step. ``id`` is stable across retries of a
run, so the endpoint can make ``apply`` and ``retire`` idempotent.

Only ``https://`` URLs, except ``http://`` to a loopback address (tests, sidecars);
redirects are not followed; ``timeout`` seconds per call (default 10, at most 60).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from keysafe.errors import InvalidInput, KeysafeError, RotationFailed
from keysafe.netloc import check_webhook_url
from keysafe.rotation.rotators.base import RotationContext
from keysafe.rotation.rotators.random import RandomRotator, random_value

__all__ = ["SIGNATURE_HEADER", "WebhookRotator", "sign"]

SIGNATURE_HEADER = "X-Keysafe-Signature"
DEFAULT_TIMEOUT = 10
MAX_TIMEOUT = 60
_OPTIONS = frozenset({"url", "signing-secret", "timeout", "length", "alphabet", "format"})


def sign(key: bytes, timestamp: int, body: bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def _url(options: Mapping[str, str]) -> str:
    return check_webhook_url(options.get("url", ""))


def _timeout(options: Mapping[str, str]) -> int:
    raw = options.get("timeout", str(DEFAULT_TIMEOUT))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_TIMEOUT:
        raise InvalidInput(f"timeout must be 1 to {MAX_TIMEOUT} seconds")
    return int(raw)


class WebhookRotator:
    name = "webhook"

    def __init__(self, transport: httpx.BaseTransport | None = None) -> None:
        self._transport = transport

    def check_options(self, options: Mapping[str, str]) -> None:
        unknown = sorted(set(options) - _OPTIONS)
        if unknown:
            raise InvalidInput(f"the webhook rotator takes no option {', '.join(unknown)}")
        _url(options)
        _timeout(options)
        if not options.get("signing-secret"):
            raise InvalidInput("the webhook rotator needs --signing-secret PATH (a keysafe secret)")
        RandomRotator().check_options(
            {k: v for k, v in options.items() if k in ("length", "alphabet", "format")}
        )

    def generate(self, ctx: RotationContext) -> str:
        return random_value(
            {k: v for k, v in ctx.options.items() if k in ("length", "alphabet", "format")}
        )

    def apply(self, ctx: RotationContext, new: str) -> None:
        rollback = ctx.extra.get("step") == "rollback"
        self._post(ctx, "apply", {"value": new, "rollback": rollback})

    def verify(self, ctx: RotationContext, new: str) -> None:
        self._post(ctx, "verify", {"value_sha256": hashlib.sha256(new.encode()).hexdigest()})

    def retire(self, ctx: RotationContext, old: str) -> None:
        self._post(ctx, "retire", {"value_sha256": hashlib.sha256(old.encode()).hexdigest()})

    def _post(self, ctx: RotationContext, step: str, fields: dict[str, Any]) -> None:
        """One signed call; RotationFailed unless the endpoint answers 2xx {"ok": true}."""
        url = _url(ctx.options)
        try:
            key = ctx.read_secret(ctx.options["signing-secret"]).encode()
        except KeysafeError as exc:
            raise RotationFailed(
                f"{ctx.path}: cannot read the signing secret {ctx.options['signing-secret']}: "
                f"{exc.detail}"
            ) from None
        now = int(time.time())
        doc = {"path": ctx.path, "step": step, "id": ctx.extra.get("run_id", ""), "timestamp": now}
        body = orjson.dumps({**doc, **fields})
        headers = {"content-type": "application/json", SIGNATURE_HEADER: sign(key, now, body)}
        host = urlsplit(url).hostname
        try:
            with httpx.Client(
                transport=self._transport, timeout=_timeout(ctx.options), follow_redirects=False
            ) as client:
                resp = client.post(url, content=body, headers=headers)
        except httpx.TimeoutException:
            raise RotationFailed(f"{ctx.path}: the webhook at {host} timed out ({step})") from None
        except httpx.HTTPError as exc:
            raise RotationFailed(
                f"{ctx.path}: cannot reach the webhook at {host} ({step}): {type(exc).__name__}"
            ) from None
        if not 200 <= resp.status_code < 300:
            raise RotationFailed(
                f"{ctx.path}: the webhook at {host} refused the {step} (HTTP {resp.status_code})"
            )
        try:
            ok = orjson.loads(resp.content).get("ok") is True
        except (orjson.JSONDecodeError, AttributeError):
            ok = False
        if not ok:
            raise RotationFailed(
                f'{ctx.path}: the webhook at {host} did not confirm the {step} ({{"ok": true}})'
            )
