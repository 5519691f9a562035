"""Replies of the Vault-compatible ``/v1`` routes (documentation: the routes build
their documents in ``keysafe.server.vaultreply`` and the route modules)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Envelope(BaseModel):
    """Vault's response envelope, present on every logical answer."""

    request_id: str
    lease_id: str
    renewable: bool
    lease_duration: int
    wrap_info: dict[str, Any] | None
    warnings: list[str] | None
    mount_type: str


class KvVersionMeta(BaseModel):
    created_time: str | None
    custom_metadata: dict[str, str] | None = Field(description="the secret's keysafe tags")
    deletion_time: str
    destroyed: bool
    version: int


class KvReadData(BaseModel):
    data: dict[str, Any] | None = Field(description="the secret's fields, as written")
    metadata: KvVersionMeta


class KvRead(Envelope):
    data: KvReadData
    auth: None


class KvWritten(Envelope):
    data: KvVersionMeta
    auth: None


class KvSubkeysData(BaseModel):
    subkeys: dict[str, Any] | None = Field(description="the value's keys, every leaf null")
    metadata: KvVersionMeta


class KvSubkeys(Envelope):
    data: KvSubkeysData
    auth: None


class KvVersionState(BaseModel):
    created_time: str | None
    deletion_time: str
    destroyed: bool


class KvMetadataData(BaseModel):
    """A secret's metadata (or, with ``LIST``/``?list=true``, only ``keys``)."""

    cas_required: bool | None = None
    created_time: str | None = None
    current_version: int | None = None
    custom_metadata: dict[str, str] | None = None
    delete_version_after: str | None = None
    max_versions: int | None = None
    oldest_version: int | None = None
    updated_time: str | None = None
    versions: dict[str, KvVersionState] | None = None
    keys: list[str] | None = Field(None, description="LIST only")


class KvMetadata(Envelope):
    data: KvMetadataData
    auth: None


class KvConfigData(BaseModel):
    cas_required: bool
    delete_version_after: str
    max_versions: int


class KvConfig(Envelope):
    data: KvConfigData
    auth: None


class MountEntry(BaseModel):
    type: str
    description: str
    accessor: str
    config: dict[str, Any]
    options: dict[str, str]
    local: bool
    seal_wrap: bool
    path: str | None = Field(None, description="sys/internal/ui/mounts only")


class Mounts(Envelope):
    """The mount table, at the top level and under ``data`` (as Vault answers it)."""

    data: dict[str, MountEntry]
    auth: None


class UiMount(Envelope):
    data: MountEntry
    auth: None


class InitStatus(BaseModel):
    initialized: bool


class Leader(BaseModel):
    ha_enabled: bool
    is_self: bool
    leader_address: str
    leader_cluster_address: str
    performance_standby: bool


class TokenData(BaseModel):
    accessor: str = Field(description="the keysafe token id")
    creation_time: int
    creation_ttl: int
    display_name: str
    expire_time: str | None
    explicit_max_ttl: int
    id: str
    issue_time: str | None
    num_uses: int
    orphan: bool
    path: str
    policies: list[str]
    renewable: bool
    ttl: int = Field(description="seconds left; 0: never expires")
    type: str


class TokenLookup(Envelope):
    data: TokenData
    auth: None


class TokenAuth(BaseModel):
    client_token: str
    accessor: str
    policies: list[str]
    token_policies: list[str]
    lease_duration: int
    renewable: bool
    token_type: str
    orphan: bool


class TokenAuthReply(Envelope):
    data: None
    auth: TokenAuth
