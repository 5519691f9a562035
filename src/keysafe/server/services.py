"""Build the services once, from settings, and hand them to the routers."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from limits.storage import Storage
from sqlalchemy import Engine

from keysafe.access.apikeys import KeyService
from keysafe.access.authorizer import Authorizer
from keysafe.access.lineage import Lineage
from keysafe.access.oauth import DbRevocationList, TokenExchange
from keysafe.access.passwords import HashingGate
from keysafe.access.people import People, build_people
from keysafe.access.policy_store import PolicyStore
from keysafe.access.service import TokenService
from keysafe.access.throttle import FailureThrottle, SharedFailures
from keysafe.audit.service import AuditLog
from keysafe.clock import Clock, SystemClock
from keysafe.config import Settings
from keysafe.crypto.barrier import Barrier
from keysafe.crypto.signatures import load_partner_keys
from keysafe.incident.compliance import ComplianceService
from keysafe.incident.integrations import Leases, Rotations
from keysafe.incident.leaks import LeakService
from keysafe.incident.partner import PartnerReports
from keysafe.incident.playbook import Playbook
from keysafe.incident.resolve import Resolver
from keysafe.incident.service import IncidentService
from keysafe.monitor.alerts import AlertService
from keysafe.monitor.metrics import Metrics
from keysafe.monitor.nodeguards import NodeFailures
from keysafe.monitor.nodelimits import node_storage_from_env
from keysafe.monitor.ratelimit import KeyRates, RateLimits
from keysafe.monitor.redisguards import ERRORS as REDIS_ERRORS
from keysafe.monitor.redisguards import RedisFailures
from keysafe.monitor.runner import AnomalyRunner
from keysafe.monitor.setup import build_alerts
from keysafe.monitor.usage import UsageTracker
from keysafe.rotation.leases import LeaseService
from keysafe.rotation.service import RotationService, build_rotation
from keysafe.secrets.service import SecretsService
from keysafe.store.engine import DbTimeouts, make_engine
from keysafe.store.invalidations import (
    KIND_ALL,
    KIND_KEY,
    KIND_POLICY,
    KIND_SEAL,
    KIND_SESSION,
    KIND_TOKEN,
    Announcer,
    Handler,
    Invalidations,
    build_invalidations,
)
from keysafe.store.offload import BlockingCalls
from keysafe.system.nodes import NodeIdentity, NodeRegistry
from keysafe.system.service import SystemService


@dataclass
class Services:
    settings: Settings
    engine: Engine
    clock: Clock
    barrier: Barrier
    audit: AuditLog
    tokens: TokenService
    secrets: SecretsService
    system: SystemService
    leaks: LeakService
    keys: KeyService
    policies: PolicyStore
    oauth: TokenExchange
    throttle: FailureThrottle
    authorizer: Authorizer
    leases: LeaseService
    alerts: AlertService
    anomaly: AnomalyRunner
    incidents: IncidentService
    compliance: ComplianceService
    users: People
    metrics: Metrics
    usage: UsageTracker
    limits: RateLimits
    rotation: RotationService
    invalidations: Invalidations
    nodes: NodeRegistry
    # Blocking database calls of the request path (inline on SQLite, bounded threads on
    # PostgreSQL).
    blocking: BlockingCalls

    def writers_alive(self) -> bool:
        """True unless a group-commit writer thread is down (health answers 503)."""
        return self.secrets.writer_alive and self.rotation.writer_alive

    def revive_writers(self) -> int:
        """Restart every writer thread that died (each restart is logged); how many."""
        return int(self.secrets.revive_writer()) + int(self.rotation.revive_writer())

    def close(self) -> None:
        """Stop the audit log and release every database connection."""
        with contextlib.suppress(Exception):  # best effort: else sessions look idle early
            self.users.sessions.flush_touches()
        with contextlib.suppress(Exception):  # best effort: the last seconds of usage
            self.usage.flush()
        self.invalidations.close()
        self.audit.stop()
        self.users.close()
        self.secrets.close()
        self.rotation.close()
        self.keys.close()
        self.oauth.close()
        self.alerts.close()
        self.blocking.close()
        self.engine.dispose()


def db_timeouts(settings: Settings) -> DbTimeouts:
    """The database wait bounds the settings ask for."""
    return DbTimeouts(
        connect_seconds=settings.database_connect_timeout_seconds,
        statement_seconds=settings.database_statement_timeout_seconds,
        idle_in_transaction_seconds=settings.database_idle_in_transaction_timeout_seconds,
        pool_seconds=settings.database_pool_timeout_seconds,
        keepalive_idle_seconds=settings.database_keepalive_idle_seconds,
    )


def build_services(
    settings: Settings, *, unseal_key: str | None = None, engine: Engine | None = None
) -> Services:
    """Wire every service with its explicit dependencies. Starts nothing."""
    engine = engine or make_engine(settings.resolved_database_url(), db_timeouts(settings))
    clock = SystemClock()
    barrier = Barrier()
    node = NodeIdentity.from_env(clock)
    blocking = BlockingCalls(engine)
    audit = AuditLog(
        engine,
        key=lambda: barrier.keyring().audit_hmac_key,
        file_path=settings.audit_file,
        anchored=lambda: barrier.keyring().audit_anchored,
        checkpoint_every=settings.audit_checkpoint_events,
        checkpoint_seconds=settings.audit_checkpoint_seconds,
        node=node.id,
    )
    policies = PolicyStore(engine, clock)
    keys = KeyService(
        engine,
        token_key=lambda: barrier.keyring().token_hmac_key,
        clock=clock,
        cache_seconds=settings.token_cache_seconds,
    )
    people = build_people(
        engine,
        barrier.keyring,
        policies,
        audit,
        clock,
        idle_minutes=settings.session_idle_minutes,
        max_hours=settings.session_max_hours,
        lockout_threshold=settings.login_lockout_threshold,
        lockout_minutes=settings.login_lockout_minutes,
        cache_seconds=settings.token_cache_seconds,
        gate=HashingGate(settings.password_hash_concurrency, settings.password_hash_queue),
    )
    tokens = TokenService(
        engine,
        token_key=lambda: barrier.keyring().token_hmac_key,
        clock=clock,
        cache_seconds=settings.token_cache_seconds,
        # A token follows whoever minted it: a token, a key, a person's session.
        lineage=Lineage(engine, clock, keys, people.sessions, settings.token_cache_seconds),
    )
    from keysafe.unseal.build import build_source

    system = SystemService(
        engine,
        barrier,
        tokens,
        unseal_key=unseal_key,
        source=build_source(settings),
        retry_max_seconds=settings.unseal_retry_max_seconds,
    )
    # Changes reach the caches of every process at once; the cache expiry is the net.
    invalidations = build_invalidations(engine, settings.redis_url)
    _announced_by(invalidations, keys, tokens, people.sessions, policies, system)
    authorizer = Authorizer(policies, clock)
    secrets = SecretsService(
        engine,
        barrier,
        audit,
        clock,
        max_value_bytes=settings.max_value_bytes,
        default_max_versions=settings.default_max_versions,
        refresh_keyring=system.refresh_keyring,
        authorizer=authorizer,
        blocking=blocking,
    )
    oauth = TokenExchange(system.signing_keys, DbRevocationList(engine), keys)
    rotation = build_rotation(engine, barrier, secrets, audit, clock, authorizer, keys)
    lease_service = LeaseService(engine, secrets, audit, clock, authorizer)
    lease_adapter = Leases(engine, lease_service)
    rotations = Rotations(engine, rotation)
    playbook = Playbook(
        engine,
        keys,
        tokens,
        audit,
        clock,
        oauth=oauth,
        rotation=lambda: rotations,
        leases=lambda: lease_adapter,
    )
    resolver = Resolver(engine, keys, tokens, secrets, lease_exists=lease_adapter.exists)
    incidents = IncidentService(engine, playbook, resolver, clock)
    try:
        partner_keys = load_partner_keys(settings.leak_report_keys)
    except ValueError as exc:
        from keysafe.errors import InvalidInput

        raise InvalidInput(str(exc)) from exc
    partners = PartnerReports(
        engine,
        partner_keys,
        audit,
        clock,
        max_age_seconds=settings.leak_report_max_age_seconds,
    )
    node_table = node_storage_from_env()  # one region of the node's table per process
    throttle = build_throttle(settings, node_table)
    alerts, anomaly = build_alerts(
        settings,
        engine=engine,
        clock=clock,
        keyring=barrier.keyring,
        audit=audit,
        keys=keys,
        tokens=tokens,
    )
    leaks = LeakService(
        tokens,
        keys,
        audit,
        clock,
        incidents_=incidents,
        partners=partners,
        sessions=people.sessions,
    )
    return Services(
        settings=settings,
        engine=engine,
        clock=clock,
        barrier=barrier,
        audit=audit,
        tokens=tokens,
        secrets=secrets,
        system=system,
        leaks=leaks,
        keys=keys,
        policies=policies,
        oauth=oauth,
        throttle=throttle,
        authorizer=authorizer,
        leases=lease_service,
        alerts=alerts,
        anomaly=anomaly,
        incidents=incidents,
        compliance=ComplianceService(
            engine, keys, policies, list_people=people.accounts.list_users
        ),
        users=people,
        metrics=Metrics(),
        usage=UsageTracker(engine, clock, retention_days=settings.usage_retention_days),
        limits=RateLimits(
            key_rates=KeyRates(engine),
            per_source=settings.rate_limit_per_source or None,
            anonymous=settings.anonymous_rate_per_source or None,
            redis_url=settings.redis_url,
            local=node_table,
            share=cluster_share(settings),
        ),
        rotation=rotation,
        invalidations=invalidations,
        nodes=NodeRegistry(engine, clock, node),
        blocking=blocking,
    )


def cluster_share(settings: Settings) -> Callable[[], int]:
    """The live members a node divides a shared limit by while Redis is down: the
    configured ``KEYSAFE_CLUSTER_SIZE`` (a node registry may count them instead)."""
    size = settings.cluster_size
    return lambda: size


def build_throttle(settings: Settings, node_table: Storage | None = None) -> FailureThrottle:
    """The failed-credential throttle: counted in Redis when it is configured (every
    node shares one count per address), else in the node's table shared by its workers
    (``--workers N``), else in this process."""
    limit = settings.auth_failures_per_minute
    shared: SharedFailures | None = None
    if not settings.redis_url and node_table is not None:
        shared = NodeFailures(node_table, limit, 60.0)
    if settings.redis_url:
        try:
            shared = RedisFailures(settings.redis_url)
        except ValueError as exc:
            from keysafe.errors import InvalidInput

            raise InvalidInput(f"KEYSAFE_REDIS_URL is not usable: {exc}") from exc
    return FailureThrottle(
        limit=limit,
        shared=shared,
        share=cluster_share(settings),
        shared_errors=REDIS_ERRORS,
    )


class _Announcing(Protocol):
    announcer: Announcer


def _announced_by(invalidations: Invalidations, *services: _Announcing) -> None:
    """Give every service that changes cached state the process's announcer."""
    for service in services:
        service.announcer = invalidations


def invalidation_handler(svc: Services) -> Handler:
    """What this process does with an announced change (run on the listener thread):
    drop the matching cache entries, or follow a seal at once."""

    def handle(kind: str, ident: str) -> None:
        if kind == KIND_TOKEN:
            svc.tokens.forget(ident)
        elif kind == KIND_KEY:
            svc.keys.forget(ident)
        elif kind == KIND_SESSION:
            svc.users.sessions.forget()
        elif kind == KIND_POLICY:
            svc.policies.invalidate()
        elif kind == KIND_SEAL:
            svc.system.follow_seal_state()
        elif kind == KIND_ALL:
            svc.tokens.forget_all()
            svc.keys.forget_all()
            svc.users.sessions.forget()
            svc.policies.invalidate()
        # An unknown kind comes from a newer node: its entries expire with the cache.

    return handle


def read_unseal_key(settings: Settings) -> str | None:
    """The automatic unseal key from KEYSAFE_UNSEAL_KEY or KEYSAFE_UNSEAL_KEY_FILE."""
    if settings.unseal_key is not None:
        return settings.unseal_key.get_secret_value()
    if settings.unseal_key_file is not None:
        from keysafe.errors import InvalidInput

        try:
            return settings.unseal_key_file.read_text().strip()
        except OSError as exc:
            raise InvalidInput(
                f"cannot read the unseal key file {settings.unseal_key_file}: {exc.strerror}"
            ) from exc
    return None
