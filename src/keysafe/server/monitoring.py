"""Request monitoring around the whole application: metrics, usage, rate-limit answers.

``RequestMonitor`` wraps the application (outside the body limit and the seal gate), so
every answer is counted: route template, status and latency for Prometheus, and, when
the request was authenticated, the usage of its key or identity and of the secret it
addressed. Authentication (``deps.authenticate``) fills the request's ``RequestNote``
with the caller. The hot read path sits outside the monitor and reports its own answers
through ``RequestMonitor.finish``: wrapping it as well (a closure around ``send``, a
coroutine more per message) cost an audited read more than the counting itself.

A rate-limited request is answered by raising the refusal's ``RateLimited`` after
``refuse`` counted it and audited the first of its burst (event ``ratelimit:hit``).
"""

from __future__ import annotations

import logging
import time
from typing import NoReturn

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keysafe.access.models import Principal
from keysafe.audit.models import OUTCOME_DENIED, AuditEvent
from keysafe.monitor.metrics import CONTENT_TYPE
from keysafe.monitor.ratelimit import Refusal
from keysafe.monitor.usage import KIND_IDENTITY, KIND_KEY
from keysafe.server.clientaddr import client_host
from keysafe.server.services import Services

log = logging.getLogger("keysafe.server")

NOTE_KEY = "keysafe.note"
METRICS_PATH = "/metrics"
FAST_READ_ROUTE = "/api/v1/secrets/{path:path}"
# Route templates whose ``path`` parameter names a secret (native API and Vault KV v2).
SECRET_ROUTES = frozenset(
    {
        FAST_READ_ROUTE,
        "/v1/secret/data/{path:path}",
        "/v1/secret/metadata/{path:path}",
    }
)
_UNMATCHED = "unmatched"  # no route: one label for every unknown URL (bounded cardinality)


class RequestNote:
    """What the layers inside learn about a request, for the monitor outside."""

    __slots__ = ("actor", "kind", "route", "secret")

    def __init__(self) -> None:
        self.actor: str | None = None
        self.kind: str = KIND_IDENTITY
        self.route: str | None = None
        self.secret: str | None = None

    def caller(self, principal: Principal) -> None:
        self.actor = principal.token_id
        self.kind = KIND_KEY if principal.kind == "key" else KIND_IDENTITY


def note_of(scope: Scope) -> RequestNote | None:
    note: RequestNote | None = scope.get(NOTE_KEY)
    return note


class RequestMonitor:
    """Pure ASGI: time and count every HTTP answer; serve a public ``/metrics``."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services
        self.metrics = services.metrics if services.settings.request_metrics else None
        self.usage = services.usage if services.settings.usage_tracking else None
        self.public_metrics = services.settings.metrics_public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.public_metrics and scope["path"] == METRICS_PATH and scope["method"] == "GET":
            # Answered here, ahead of the seal gate: a sealed vault is worth scraping.
            await self._serve_metrics(send)
            return
        note = RequestNote()
        scope[NOTE_KEY] = note
        status = 500  # an exception before the answer started is a 500 to the client
        start = time.perf_counter()

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            self.finish(scope, note, status, time.perf_counter() - start)

    def finish(self, scope: Scope, note: RequestNote, status: int, seconds: float) -> None:
        """Count one answered request (``note`` says who made it and what it addressed)."""
        route = note.route
        if route is None:
            matched = scope.get("route")
            route = getattr(matched, "path", _UNMATCHED) if matched is not None else _UNMATCHED
        if self.metrics is not None:
            self.metrics.request(scope["method"], route, status, seconds)
        if self.usage is not None and note.actor is not None:
            secret = note.secret
            if secret is None and route in SECRET_ROUTES:
                secret = scope.get("path_params", {}).get("path")
            source = client_host(scope)
            self.usage.note(note.kind, note.actor, source, status, secret)

    async def _serve_metrics(self, send: Send) -> None:
        self.services.metrics.set_sealed(self.services.barrier.sealed)
        body = self.services.metrics.exposition()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", CONTENT_TYPE.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


async def refuse(
    svc: Services, refusal: Refusal, *, rid: str, actor: str, src: str, path: str
) -> NoReturn:
    """Count a rate-limit refusal, audit it if it starts a burst, raise its 429."""
    svc.metrics.rate_limited(refusal.scope)
    if refusal.first_in_burst:
        # Once per burst: the rest of the window's refusals are counted, not audited.
        await svc.audit.record(
            AuditEvent(
                svc.clock.now_us(),
                rid,
                actor,
                src,
                "ratelimit:hit",
                path[:512],
                OUTCOME_DENIED,
                f"{refusal.scope} {refusal.subject}: over {refusal.limit} requests per "
                f"{refusal.window_seconds} s; further refusals for {refusal.reset_after} s "
                "are not audited",
            )
        )
    raise refusal.error()


# -- background jobs (see keysafe.server.jobs) ------------------------------------------


def flush_usage(svc: Services) -> int:
    """Merge this process's usage counts of keys and identities into the database."""
    return svc.usage.flush()


def refresh_key_rates(svc: Services) -> None:
    """Reload the API keys' rates for the per-key limits; publish the seal state."""
    svc.metrics.set_sealed(svc.barrier.sealed)
    svc.limits.key_rates.refresh()


def prune_usage(svc: Services) -> int:
    """Drop usage older than the retention."""
    return svc.usage.prune()


def monitor_for(app: ASGIApp, svc: Services) -> RequestMonitor | None:
    """A monitor around ``app``, or None when metrics, usage and a public ``/metrics``
    are all turned off (then nothing is added to the request path)."""
    settings = svc.settings
    if settings.request_metrics or settings.usage_tracking or settings.metrics_public:
        return RequestMonitor(app, svc)
    return None
