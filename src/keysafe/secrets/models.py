"""Value types the secrets service returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class SecretValue:
    path: str
    version: int
    value: str
    metadata: dict[str, Any]
    # When this version was written (ISO 8601); None where the reader did not load it.
    created_at: str | None = None

    def as_document(self) -> dict[str, Any]:
        """The reply of ``GET /api/v1/secrets/{path}``."""
        return {
            "path": self.path,
            "version": self.version,
            "value": self.value,
            "metadata": self.metadata,
        }


@dataclass(frozen=True, slots=True)
class WriteResult:
    path: str
    version: int
    created_at: str | None

    def as_document(self) -> dict[str, Any]:
        """The API's answer to a write or rollback."""
        return {"path": self.path, "version": self.version, "created_at": self.created_at}


def context(path: str, version: int) -> bytes:
    """Associated data binding a ciphertext to its secret and version."""
    return f"{path}\x00{version}".encode()
