"""The FastAPI application: services built once at start-up, routers, seal gate."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

import anyio.to_thread
import orjson
from fastapi import APIRouter, FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from keysafe import __version__
from keysafe.audit.service import CHECKPOINT_LOGGER
from keysafe.config import Settings, load_settings
from keysafe.errors import NotInitialized, Sealed
from keysafe.server import problems
from keysafe.server.health import HealthChecks
from keysafe.server.jsongate import JsonGate
from keysafe.server.openapi import ContractApp, operation_id
from keysafe.server.routes.docs import OPENAPI_URL
from keysafe.server.services import (
    Services,
    build_services,
    invalidation_handler,
    read_unseal_key,
)
from keysafe.server.vaultgate import VaultGate

log = logging.getLogger("keysafe.server")

INTERNAL_SETTINGS_ENV = "KEYSAFE_INTERNAL_SERVER_SETTINGS"
# Secret settings that child processes read from their own variables, not the dump.
SECRET_SETTINGS_ENV = {"pkcs11_pin": "KEYSAFE_PKCS11_PIN", "transit_token": "KEYSAFE_TRANSIT_TOKEN"}
SEAL_POLL_SECONDS = 0.5

# Routes that answer while sealed; everything else gets 503 "sealed".
_OPEN_WHILE_SEALED = frozenset(
    {
        "/api/v1/sys/health",
        "/api/v1/sys/seal-status",
        "/api/v1/sys/init",
        "/api/v1/sys/unseal",
        "/v1/sys/health",
        "/v1/sys/seal-status",
        # The contract and its docs: what an operator reads to learn how to unseal.
        "/api/v1/openapi.json",
        "/api/v1/docs",
        "/api/v1/docs/start.js",
    }
)
_OPEN_PREFIX_WHILE_SEALED = "/api/v1/docs/assets/"
# The console shows its own "sealed" page (and serves its files) while sealed.
_CONSOLE_PREFIX = "/ui"


class SealGate:
    """Pure ASGI middleware (cheap): refuse every other route while sealed."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services
        self.console = services.settings.ui

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and self.services.barrier.sealed
            and scope["path"] not in _OPEN_WHILE_SEALED
            and not scope["path"].startswith(_OPEN_PREFIX_WHILE_SEALED)
            and not (self.console and scope["path"].startswith(_CONSOLE_PREFIX))
        ):
            initialized = self.services.system.seal_config() is not None
            error = (
                Sealed("the vault is sealed; unseal it with `keysafe operator unseal`")
                if initialized
                else NotInitialized("the vault is not initialised; run `keysafe operator init`")
            )
            status, headers, body = problems.raw_reply(scope["path"], error)
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def api_routers() -> list[APIRouter]:
    """Every router the application mounts (the route table tests walk)."""
    from keysafe.server.routes import access, audit, docs, leaks, oauth, secrets, sys, tokens, vault
    from keysafe.server.routes import alerts as alert_routes
    from keysafe.server.routes import backup as backup_routes
    from keysafe.server.routes import incidents as incident_routes
    from keysafe.server.routes import leases as lease_routes
    from keysafe.server.routes import report as report_routes
    from keysafe.server.routes import rotation as rotation_routes
    from keysafe.server.routes import transit as transit_routes
    from keysafe.server.routes import usage as usage_routes
    from keysafe.server.routes import users as user_routes
    from keysafe.server.routes import vault_kv as vault_kv_routes
    from keysafe.server.routes import vault_token as vault_token_routes

    return [
        m.router
        for m in (
            sys,
            secrets,
            tokens,
            audit,
            leaks,
            access,
            oauth,
            vault,
            vault_kv_routes,
            vault_token_routes,
            lease_routes,
            alert_routes,
            incident_routes,
            report_routes,
            user_routes,
            usage_routes,
            rotation_routes,
            transit_routes,
            backup_routes,
            docs,
        )
    ]


def create_app(settings: Settings, *, services: Services | None = None) -> FastAPI:
    """The application for ``settings``; builds services unless given."""
    svc = services or build_services(settings, unseal_key=read_unseal_key(settings))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from keysafe.store.migrate import upgrade

        await anyio.to_thread.run_sync(upgrade, svc.engine)
        svc.audit.start()
        svc.invalidations.start(invalidation_handler(svc))
        if await anyio.to_thread.run_sync(svc.system.auto_unseal):
            log.info("unsealed from the configured unseal source")
        poller = asyncio.create_task(_follow_seal_state(svc))
        # Everything built so far lives as long as the process: keep it out of the
        # cyclic collector's full passes, which otherwise stall requests for many ms.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            poller.cancel()
            with contextlib.suppress(Exception):
                svc.keys.flush_usage()
                svc.metrics.flush()
            svc.close()

    app = ContractApp(
        title="keysafe",
        version=__version__,
        openapi_url=OPENAPI_URL,
        docs_url=None,  # served from packaged assets: keysafe.server.routes.docs
        redoc_url=None,
        generate_unique_id_function=operation_id,
        lifespan=lifespan,
        # Refuse huge bodies before parsing them; JSON escaping may inflate a value
        # (``\u0000`` is six bytes for one), hence the margin over the value limit.
        max_body_size=8 * settings.max_value_bytes + 65536,
    )
    app.state.services = svc
    app.state.health = HealthChecks(svc, settings.health_database_timeout_seconds)
    problems.install(app)
    for router in api_routers():
        app.include_router(router)
    # Innermost first: the seal gate answers before any body is read or checked.
    app.add_middleware(JsonGate)
    app.add_middleware(SealGate, services=svc)
    app.add_middleware(VaultGate)  # before the JSON gate: a body's type, Vault headers
    if settings.ui:
        from keysafe.web import install_console

        install_console(app)  # outermost: its headers reach sealed answers too
    return app


def with_fast_paths(app: FastAPI) -> ASGIApp:
    """``app`` behind the declared-body limit, the request monitor
    (``keysafe.server.monitoring``) and, outermost, the hot read path
    (``keysafe.server.fastpath``), which reports its own answers to the monitor; with
    ``KEYSAFE_TRUSTED_PROXIES`` set, the client address is taken from a trusted proxy's
    ``X-Forwarded-For`` before all of them (``keysafe.server.clientaddr``)."""
    from keysafe.netloc import parse_networks
    from keysafe.server.clientaddr import TrustedProxies
    from keysafe.server.fastpath import DeclaredBodyLimit, HotReadPath
    from keysafe.server.monitoring import monitor_for

    svc: Services = app.state.services
    limit = app.max_body_size
    inner: ASGIApp = DeclaredBodyLimit(app, limit) if limit is not None else app
    monitor = monitor_for(inner, svc)
    outer: ASGIApp = HotReadPath(monitor or inner, svc, monitor)
    proxies = parse_networks(svc.settings.trusted_proxies)
    if proxies:  # outermost: every layer below sees the client, not the balancer
        outer = TrustedProxies(outer, proxies)
    return outer


async def _follow_seal_state(svc: Services) -> None:
    """Keep this process's seal state and keyring in line with the other processes,
    checkpoint SQLite's WAL off the request path, and run the background jobs."""
    from keysafe.server.jobprocess import skipped_here
    from keysafe.server.jobs import Schedule, background_jobs
    from keysafe.store.rawread import checkpoint

    elsewhere = skipped_here()
    schedule = Schedule([job for job in background_jobs() if job.name not in elsewhere])
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(SEAL_POLL_SECONDS)
        svc.metrics.flush()  # a few dictionary items: on the loop, no thread hop
        try:
            await anyio.to_thread.run_sync(svc.system.follow_seal_state)
            await anyio.to_thread.run_sync(checkpoint, svc.engine)
            await anyio.to_thread.run_sync(svc.policies.refresh)
            if not svc.barrier.sealed:
                await anyio.to_thread.run_sync(svc.keys.flush_usage)
        except Exception as exc:  # keep polling; a database blip must not kill the server
            log.warning("could not read the seal state: %s", exc)
        for job in schedule.jobs:
            if not schedule.take(job, loop.time(), svc.barrier.sealed):
                continue
            try:
                await anyio.to_thread.run_sync(job.run, svc)
            except Exception as exc:  # retried when next due
                log.warning("background job %r failed: %s", job.name, exc)


def sweep_unused_keys(svc: Services) -> list[str]:
    """Revoke keys unused for ``key_revoke_unused_days`` (if set), audited."""
    days = svc.settings.key_revoke_unused_days
    if not days:
        return []
    from keysafe.audit.models import OUTCOME_OK, AuditEvent

    svc.keys.flush_usage()
    with svc.keys.write_txn() as conn:
        revoked = svc.keys.revoke_unused(conn, days)
        if revoked:
            svc.audit.append_in_txn(
                conn,
                [
                    AuditEvent(
                        svc.clock.now_us(),
                        "unused-key-rule",
                        "system",
                        "server",
                        "key:revoke-unused",
                        "",
                        OUTCOME_OK,
                        f"{key_id} unused for {days} days",
                    )
                    for key_id in revoked
                ],
            )
    if revoked:
        log.warning("revoked %d key(s) unused for %d days", len(revoked), days)
    return revoked


def settings_from_env() -> Settings:
    """The settings ``run_server`` put in the environment for its child processes."""
    raw = os.environ.get(INTERNAL_SETTINGS_ENV)
    if raw is None:
        return load_settings()
    values: dict[str, Any] = orjson.loads(raw)
    for name, env_name in SECRET_SETTINGS_ENV.items():
        if os.environ.get(env_name):
            values[name] = os.environ[env_name]
    return Settings.model_validate(values)


def create_app_from_env() -> ASGIApp:
    """Factory for uvicorn worker processes: settings arrive through the environment."""
    _log_audit_checkpoints()
    return with_fast_paths(create_app(settings_from_env()))


def _log_audit_checkpoints() -> None:
    """Signed audit checkpoints reach the server log (stderr) whatever uvicorn's level:
    a copy of the chain's anchors outside the database and the audit file."""
    logger = logging.getLogger(CHECKPOINT_LOGGER)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
