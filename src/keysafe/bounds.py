"""The ranges every input must fit before it reaches storage or serialisation.

Integers are stored in signed 64-bit columns and serialised by orjson (64 bits at most);
strings are stored as UTF-8, which has no encoding for a lone UTF-16 surrogate; JSON
documents are re-serialised, which recursion limits. An input outside these ranges is the
caller's mistake (400), never a crash (500). Parsers and models import the limits from
here so that one number governs the API, the services and the OpenAPI document.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic_core import from_json

from keysafe.errors import InvalidInput

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# Versions are 32-bit columns (PostgreSQL ``integer``): a secret keeps at most 1,000
# of them, so two billion is never reached by anything but a mistake.
MAX_VERSION = 2**31 - 1
# Durations given in seconds (TTLs, grace, intervals): a century is more than any
# credential or schedule needs, and microseconds of it still fit in 64 bits.
MAX_SECONDS = 100 * 366 * 86400
# Nesting of a JSON document (KV data, request bodies): deep enough for any real
# configuration object, far below the serialisers' recursion limits.
MAX_JSON_DEPTH = 64


def loads_bounded(raw: bytes | str) -> Any:
    """Parse JSON that keysafe can store and serialise again; raises InvalidInput.

    Refuses what the standard parser lets through: lone UTF-16 surrogates, ``NaN`` and
    ``Infinity`` (also as an overflowing ``1e999``), integers outside signed 64 bits, and
    nesting past ``MAX_JSON_DEPTH``.
    """
    try:
        doc = from_json(raw, allow_inf_nan=False)
    except ValueError as exc:
        raise InvalidInput(f"invalid JSON: {exc}") from None
    check_bounded(doc)
    return doc


def check_bounded(doc: Any) -> None:
    """Raise InvalidInput unless every number in ``doc`` (parsed JSON) is storable and
    it nests at most ``MAX_JSON_DEPTH`` levels; strings must encode as UTF-8."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int):
            if not INT64_MIN <= value <= INT64_MAX:
                raise InvalidInput("integers must fit in 64 bits (signed)")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise InvalidInput("numbers must be finite (no NaN, Infinity or 1e999)")
        elif isinstance(value, str):
            check_text(value)
        elif isinstance(value, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise InvalidInput(f"JSON nests deeper than {MAX_JSON_DEPTH} levels")
            if isinstance(value, dict):
                for key, item in value.items():
                    check_text(key)
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in value)


def check_text(value: str, field: str = "text") -> str:
    """``value`` unchanged if it encodes as UTF-8 (no lone surrogates); else InvalidInput."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput(f"{field}: not valid Unicode (lone surrogate)") from None
    return value


# At most this many versions in one request (delete, undelete, destroy); a secret keeps
# at most 1,000 versions, so a longer list can only be a mistake or an attack.
MAX_VERSIONS_PER_REQUEST = 1000


def check_version(version: int | None) -> int | None:
    """``version`` unchanged if it is None or a storable version number (1 up)."""
    if version is not None and not 1 <= version <= MAX_VERSION:
        raise InvalidInput(f"version: must be between 1 and {MAX_VERSION}")
    return version


def check_versions(versions: list[int] | None) -> list[int] | None:
    """``versions`` unchanged if each is a storable version and they are few enough."""
    if versions is not None:
        if len(versions) > MAX_VERSIONS_PER_REQUEST:
            raise InvalidInput(f"versions: at most {MAX_VERSIONS_PER_REQUEST} at once")
        for version in versions:
            check_version(version)
    return versions
