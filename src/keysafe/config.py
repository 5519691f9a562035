"""Typed settings, read once in ``main()`` or ``create_app`` and passed down.

Each field comes from a ``KEYSAFE_*`` environment variable or from a TOML file given
with ``--config`` (the environment wins). Nothing here is read at import time.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from keysafe.errors import InvalidInput


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
    redis_url: str | None = None
    # Embedded/automated unseal source: the root key in its text form, or a file holding it.
    unseal_key: SecretStr | None = None
    unseal_key_file: Path | None = None
    # Secrets.
    max_value_bytes: int = 64 * 1024
    default_max_versions: int = 20
    # Audit.
    audit_file: Path | None = None
    audit_flush_interval_ms: float = 2.0
    # Token lookups are cached this long in each server process; revocation is immediate
    # on the process that revoked and visible to other processes within this delay.
    token_cache_seconds: float = 1.0
    # API keys: revoke keys nobody used for this many days (None: only list them with
    # `keysafe key list --unused-for`). Checked by the server every ten minutes.
    key_revoke_unused_days: int | None = None
    # Failed credential checks one source address may make per minute before it is
    # refused (429) for a minute.
    auth_failures_per_minute: int = 20

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
    env = Settings()
    env_set = env.model_fields_set
    merged: dict[str, Any] = {**file_values}
    for name in env_set:
        merged[name] = getattr(env, name)
    merged.update({k: v for k, v in overrides.items() if v is not None})
    return Settings.model_validate(merged)
