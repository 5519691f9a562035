"""Translations between keysafe's secrets and Vault's KV v2 documents."""

from __future__ import annotations

from typing import Any

import orjson

from keysafe.access.models import RequestContext
from keysafe.errors import InvalidInput, NotFound
from keysafe.secrets.models import SecretValue
from keysafe.secrets.service import SecretsService
from keysafe.server.vaultreply import seconds


def as_object(value: str) -> dict[str, Any]:
    """A stored value as KV v2 data: its JSON object, else ``{"value": value}``."""
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return {"value": value}
    return doc if isinstance(doc, dict) else {"value": value}


def read_data(value: SecretValue) -> dict[str, Any]:
    """A KV v2 read's ``data``: the fields and this version's metadata."""
    return {
        "data": as_object(value.value),
        "metadata": {
            "created_time": value.created_at,
            "custom_metadata": value.metadata["tags"] or None,
            "deletion_time": "",
            "destroyed": False,
            "version": value.version,
        },
    }


async def gone_version(
    svc: SecretsService, ctx: RequestContext, path: str, version: int
) -> dict[str, Any] | None:
    """What a read of a deleted or destroyed version answers with its 404 (the version's
    metadata, as Vault does), when the secret exists and the caller may read it; else
    None (a plain 404)."""
    try:
        doc = await svc.describe(ctx, path, "read")
    except NotFound:
        return None
    wanted = version or doc["current_version"]
    for entry in doc["versions"]:
        if entry["version"] == wanted and (entry["deleted_at"] or entry["destroyed"]):
            return {"data": None, "metadata": version_metadata(entry, doc["tags"])}
    return None


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge key by key, null removes a key,
    anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def subkeys(data: Any, depth: int, level: int = 1) -> Any:
    """``data``'s keys, every leaf (and everything below ``depth``; 0: no limit) null."""
    if not isinstance(data, dict) or (depth and level > depth):
        return None
    return {key: subkeys(value, depth, level + 1) for key, value in data.items()}


def version_metadata(entry: dict[str, Any], tags: dict[str, str]) -> dict[str, Any]:
    """One version's ``metadata`` block as a KV v2 read shows it."""
    return {
        "created_time": entry["created_at"],
        "custom_metadata": tags or None,
        "deletion_time": entry["deleted_at"] or "",
        "destroyed": entry["destroyed"],
        "version": entry["version"],
    }


def vault_metadata(doc: dict[str, Any]) -> dict[str, Any]:
    """``SecretsService.describe``'s answer in Vault's metadata shape."""
    versions = {
        str(v["version"]): {
            "created_time": v["created_at"],
            "deletion_time": v["deleted_at"] or "",
            "destroyed": v["destroyed"],
        }
        for v in doc["versions"]
    }
    return {
        "cas_required": False,
        "created_time": doc["created_at"],
        "current_version": doc["current_version"],
        "custom_metadata": doc["tags"] or None,
        "delete_version_after": "0s",
        "max_versions": doc["max_versions"],
        "oldest_version": min((v["version"] for v in doc["versions"]), default=0),
        "updated_time": doc["updated_at"],
        "versions": versions,
    }


def metadata_changes(wanted: dict[str, Any], current_tags: dict[str, str] | None) -> dict[str, Any]:
    """A Vault metadata write as ``SecretsService.set_metadata`` changes. With
    ``current_tags`` (a PATCH) ``custom_metadata`` merges into them, else replaces them.
    What keysafe cannot do is refused."""
    if wanted.get("cas_required"):
        raise InvalidInput(
            "cas_required is not supported; send options.cas with each write instead"
        )
    after = wanted.get("delete_version_after")
    if after is not None and seconds(after, "delete_version_after") != 0:
        raise InvalidInput(
            "delete_version_after is not supported; use the secret's expires_at instead"
        )
    changes: dict[str, Any] = {}
    if wanted.get("max_versions"):
        changes["max_versions"] = wanted["max_versions"]
    custom = wanted.get("custom_metadata")
    if custom is not None:
        if current_tags is not None:
            custom = merge_patch(current_tags, custom)
        elif any(v is None for v in custom.values()):
            raise InvalidInput("custom_metadata: values must be strings")
        changes["tags"] = custom
    return changes
