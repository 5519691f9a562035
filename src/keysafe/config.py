"""Typed settings, read once in ``main()`` or ``create_app`` and passed down.

Each field comes from a ``KEYSAFE_*`` environment variable or from a TOML file given
with ``--config`` (the environment wins). Nothing here is read at import time.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from keysafe.errors import InvalidInput
from keysafe.netloc import parse_networks


def default_home() -> Path:
    return Path.home() / ".keysafe"


class Settings(BaseSettings):
    """Server and client settings shared by the CLI, the server and the SDK."""

    model_config = SettingsConfigDict(env_prefix="KEYSAFE_", extra="ignore")

    home: Path = Field(default_factory=default_home)
    addr: str | None = None
    token: SecretStr | None = None
    cacert: Path | None = None
    database_url: str | None = None
    # PostgreSQL waits (every connection): connect, statement (server side, and the
    # longest a request waits on the database), a transaction left idle, a free pooled
    # connection, TCP keep-alive idle time. A hung database gives 503, never a frozen node.
    database_connect_timeout_seconds: float = Field(5.0, gt=0, le=300)
    database_statement_timeout_seconds: float = Field(10.0, gt=0, le=3600)
    database_idle_in_transaction_timeout_seconds: float = Field(30.0, gt=0, le=86400)
    database_pool_timeout_seconds: float = Field(5.0, gt=0, le=300)
    database_keepalive_idle_seconds: int = Field(10, ge=1, le=7200)
    # Health: the database must answer a trivial query within this long (else 503), so
    # that health itself answers within about 1 s while the database hangs.
    health_database_timeout_seconds: float = Field(0.8, gt=0, le=30)
    redis_url: str | None = None
    # Embedded/automated unseal source: the root key in its text form, or a file holding it.
    unseal_key: SecretStr | None = None
    unseal_key_file: Path | None = None
    # Auto-unseal (keysafe.unseal): "pkcs11" or "transit" wraps the root key outside the
    # database; every node with the same source unseals itself at start. The PIN and the
    # transit token come from the environment or a file (0600), never from the TOML file.
    seal: str = Field("", pattern="^(|pkcs11|transit)$")
    pkcs11_library: Path | None = None
    pkcs11_token_label: str = ""
    pkcs11_pin: SecretStr | None = None
    pkcs11_pin_file: Path | None = None
    pkcs11_key_label: str = "keysafe-root"
    pkcs11_generate_key: bool = False
    transit_address: str = ""
    transit_token: SecretStr | None = None
    transit_token_file: Path | None = None
    transit_key_name: str = "keysafe-root"
    transit_mount_path: str = "transit"
    transit_cacert: Path | None = None
    # How long one call to the source may take, and the longest wait between retries
    # while it fails (the wait doubles from one second up to this).
    unseal_source_timeout_seconds: float = Field(10.0, gt=0, le=120)
    unseal_retry_max_seconds: float = Field(30.0, ge=1, le=3600)
    # Secrets.
    max_value_bytes: int = 64 * 1024
    default_max_versions: int = 20
    # Audit.
    audit_file: Path | None = None
    audit_flush_interval_ms: float = 2.0
    # Signed checkpoints of the audit chain (database, audit file, server log): one every
    # this many events, and at least this often while events are written.
    audit_checkpoint_events: int = Field(1000, ge=1)
    audit_checkpoint_seconds: float = Field(60.0, gt=0)
    # Token lookups are cached this long in each server process; revocation is immediate
    # on the process that revoked and visible to other processes within this delay.
    token_cache_seconds: float = 1.0
    # API keys: revoke keys nobody used for this many days (None: only list them with
    # `keysafe key list --unused-for`). Checked by the server every ten minutes.
    key_revoke_unused_days: int | None = None
    # Failed credential checks one source address may make per minute before it is
    # refused (429) for a minute.
    auth_failures_per_minute: int = 20
    # Load balancers (comma-separated addresses or CIDRs): a request whose TCP peer is
    # one of them is attributed to the client its X-Forwarded-For names (the rightmost
    # hop that is not a trusted proxy); from any other peer the header is ignored.
    trusted_proxies: str = ""
    # Nodes sharing this database and Redis. While Redis is unreachable each node limits
    # at its share (limit / cluster_size) so the cluster as a whole stays near the limit.
    cluster_size: int = Field(1, ge=1, le=1000)
    # Monitoring (keysafe.monitor): requests one source address may make, e.g.
    # "1000/minute" (empty: no per-source limit; API keys keep their own ``rate``);
    # counts are shared through ``redis_url`` when set, else kept per process.
    rate_limit_per_source: str = ""
    # GET /metrics without a credential (default: read-audit on sys/metrics needed).
    metrics_public: bool = False
    # The web console at /ui (keysafe.web); false turns it off (404).
    ui: bool = True
    # Per-key/identity usage (hourly buckets, kept this many days; a secret's usage is
    # read from its audit trail) and request metrics; both on unless turned off
    # (benchmarks measure their cost that way).
    usage_tracking: bool = True
    usage_retention_days: int = Field(90, ge=1, le=3650)
    request_metrics: bool = True
    # Anonymous cost caps. Requests one source address may make to each anonymous route
    # (login, leak reports, OAuth token/revoke/introspect, AppRole login, init, unseal,
    # generate-root), counted like ``rate_limit_per_source`` (Redis, else this node).
    anonymous_rate_per_source: str = "120/minute"
    # Password hashing (argon2, 19 MiB each) at once per server process, and callers
    # that may wait for a turn; beyond that a login is answered 429 at once.
    password_hash_concurrency: int = Field(2, ge=1, le=64)
    password_hash_queue: int = Field(16, ge=0, le=1024)
    # Connections: a request head must arrive whole within this many seconds and fit in
    # this many bytes (else 408/431 and closed); an unfinished body that stops arriving,
    # the TLS handshake and idle keep-alive connections are bounded too.
    header_timeout_seconds: float = Field(10.0, gt=0, le=300)
    body_idle_timeout_seconds: float = Field(30.0, gt=0, le=3600)
    max_header_bytes: int = Field(32 * 1024, ge=1024, le=1024 * 1024)
    tls_handshake_timeout_seconds: float = Field(10.0, gt=0, le=300)
    keep_alive_seconds: int = Field(30, ge=1, le=3600)
    # A one-time secret that ``POST /api/v1/sys/init`` must present (``keysafe server
    # --init-token-file``); consumed by a successful init.
    init_token_file: Path | None = None
    # People's sessions: idle timeout and absolute lifetime. Idle expiry is exact on the
    # process that served the last request and at most about a minute early (never
    # late) on others, which learn of use through batched last-seen writes.
    session_idle_minutes: int = Field(30, ge=1)
    session_max_hours: int = Field(12, ge=1)
    # Consecutive failed logins for one name before it is locked, and for how long.
    login_lockout_threshold: int = Field(5, ge=1)
    login_lockout_minutes: int = Field(15, ge=1)
    # Alerts (keysafe.monitor): the automatic action per anomaly kind (JSON object, e.g.
    # {"rate_spike": "suspend"}; unnamed kinds only notify; "suspend" suspends an API key
    # until `keysafe key resume` and revokes a scoped token), webhook retries, and the
    # SMTP server that e-mails alerts to ``smtp_to`` and to e-mail hooks.
    alert_actions: dict[str, str] = Field(default_factory=dict)
    alert_max_attempts: int = 6
    alert_retry_base_seconds: float = 5.0
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "keysafe@localhost"
    smtp_to: list[str] = Field(default_factory=list)
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    # Leak reports from secret-scanning partners: their ECDSA P-256 public keys by
    # identifier (GitHub's JSON shape), and how old a timestamped report may be.
    leak_report_keys: Path | None = None
    leak_report_max_age_seconds: int = 3600

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxies(cls, value: Any) -> Any:
        """A TOML list or a comma-separated string, each an address or CIDR."""
        if isinstance(value, list | tuple):
            value = ",".join(str(v) for v in value)
        if isinstance(value, str):
            try:
                parse_networks(value)
            except InvalidInput as exc:
                raise ValueError(f"KEYSAFE_TRUSTED_PROXIES: {exc.detail}") from exc
        return value

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    def resolved_database_url(self) -> str:
        """``KEYSAFE_DATABASE_URL`` or the embedded SQLite file under the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'keysafe.db'}"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from a TOML file (optional), then the environment, then ``overrides``.

    Raises InvalidInput when the file is missing or not valid TOML.
    """
    file_values: dict[str, Any] = {}
    if config_file is not None:
        try:
            with config_file.open("rb") as fh:
                raw = tomllib.load(fh)
        except FileNotFoundError as exc:
            raise InvalidInput(f"config file {config_file} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise InvalidInput(f"config file {config_file} is not valid TOML: {exc}") from exc
        file_values = {k.lower().removeprefix("keysafe_"): v for k, v in raw.items()}
        # A misspelt key silently ignored would leave a setting at its default.
        unknown = sorted(set(file_values) - set(Settings.model_fields))
        if unknown:
            raise InvalidInput(f"config file {config_file}: unknown key {unknown[0]!r}")
        for secret in ("pkcs11_pin", "transit_token"):
            if secret in file_values:
                raise InvalidInput(
                    f"config file {config_file}: {secret} belongs in the environment "
                    f"(KEYSAFE_{secret.upper()}) or in {secret}_file, not in the config file"
                )
    env = Settings()
    env_set = env.model_fields_set
    merged: dict[str, Any] = {**file_values}
    for name in env_set:
        merged[name] = getattr(env, name)
    merged.update({k: v for k, v in overrides.items() if v is not None})
    return Settings.model_validate(merged)
