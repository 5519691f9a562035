"""Vault's answer shapes for ``/v1``: the response envelope, durations, times."""

from __future__ import annotations

import re
from typing import Annotated, Any

import orjson
from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response

from keysafe.errors import InvalidInput
from keysafe.server import deps
from keysafe.server.routes.sys import NO_STORE

_DURATION = re.compile(r"(\d+)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_DURATION_SECONDS = 10 * 365 * 86400
# A Vault duration in a body: seconds, or a string such as "1h30m" (see ``seconds``).
Duration = (
    Annotated[int, Field(ge=0, le=MAX_DURATION_SECONDS)] | Annotated[str, Field(max_length=64)]
)


def envelope(
    request: Request,
    data: dict[str, Any] | None = None,
    *,
    auth: dict[str, Any] | None = None,
    warnings: list[str] | None = None,
    status: int = 200,
) -> Response:
    """Vault's response envelope around ``data``/``auth``: every field a strict client
    (vaultrs, Go structs) expects is present."""
    doc = envelope_doc(deps.request_id(request), data, auth=auth, warnings=warnings)
    return Response(
        orjson.dumps(doc), status_code=status, media_type="application/json", headers=NO_STORE
    )


def envelope_doc(
    request_id: str,
    data: dict[str, Any] | None,
    *,
    auth: dict[str, Any] | None = None,
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "lease_id": "",
        "renewable": False,
        "lease_duration": 0,
        "data": data,
        "wrap_info": None,
        "warnings": warnings,
        "auth": auth,
        "mount_type": "",
    }


def not_found(data: dict[str, Any] | None = None) -> Response:
    """Vault's 404: no messages; a KV read of a deleted version carries its metadata."""
    doc: dict[str, Any] = {"errors": []}
    if data is not None:
        doc = {**doc, "data": data}
    return Response(orjson.dumps(doc), status_code=404, media_type="application/json")


def seconds(value: Any, name: str) -> int:
    """A Vault duration (``3600``, ``"3600"``, ``"1h30m"``, ``"90s"``) in seconds."""
    bad = InvalidInput(f"{name}: expected a duration such as 3600 or '1h', not {str(value)[:40]!r}")
    if isinstance(value, int) and not isinstance(value, bool):
        total = value
    elif isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            total = int(text)
        else:
            parts = _DURATION.findall(text)
            if not text or "".join(n + u for n, u in parts) != text:
                raise bad
            total = int(sum(int(n) * _UNIT_SECONDS[u] for n, u in parts))
    else:
        raise bad
    if not 0 <= total <= MAX_DURATION_SECONDS:
        raise InvalidInput(f"{name}: must be between 0 and {MAX_DURATION_SECONDS} seconds")
    return total
