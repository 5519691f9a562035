"""Build the services once, from settings, and hand them to the routers."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from keysafe.access.apikeys import KeyService
from keysafe.access.authorizer import Authorizer
from keysafe.access.oauth import DbRevocationList, TokenExchange
from keysafe.access.policy_store import PolicyStore
from keysafe.access.service import TokenService
from keysafe.access.throttle import FailureThrottle
from keysafe.audit.service import AuditLog
from keysafe.clock import Clock, SystemClock
from keysafe.config import Settings
from keysafe.crypto.barrier import Barrier
from keysafe.incident.service import LeakService
from keysafe.secrets.service import SecretsService
from keysafe.store.engine import make_engine
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

    def close(self) -> None:
        """Stop the audit log and release every database connection."""
        self.audit.stop()
        self.secrets.close()
        self.keys.close()
        self.oauth.close()
        self.engine.dispose()


def build_services(
    settings: Settings, *, unseal_key: str | None = None, engine: Engine | None = None
) -> Services:
    """Wire every service with its explicit dependencies. Starts nothing."""
    engine = engine or make_engine(settings.resolved_database_url())
    clock = SystemClock()
    barrier = Barrier()
    audit = AuditLog(
        engine, key=lambda: barrier.keyring().audit_hmac_key, file_path=settings.audit_file
    )
    tokens = TokenService(
        engine,
        token_key=lambda: barrier.keyring().token_hmac_key,
        clock=clock,
        cache_seconds=settings.token_cache_seconds,
    )
    system = SystemService(engine, barrier, tokens, unseal_key=unseal_key)
    policies = PolicyStore(engine, clock)
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
    )
    keys = KeyService(
        engine,
        token_key=lambda: barrier.keyring().token_hmac_key,
        clock=clock,
        cache_seconds=settings.token_cache_seconds,
    )
    leaks = LeakService(tokens, keys, audit, clock)
    oauth = TokenExchange(system.signing_keys, DbRevocationList(engine))
    throttle = FailureThrottle(limit=settings.auth_failures_per_minute)
    return Services(
        settings,
        engine,
        clock,
        barrier,
        audit,
        tokens,
        secrets,
        system,
        leaks,
        keys,
        policies,
        oauth,
        throttle,
        authorizer,
    )


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
