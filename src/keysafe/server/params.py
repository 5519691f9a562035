"""Bounded parameter types shared by the routes, so that the OpenAPI document states
each range and FastAPI refuses what lies outside it with a 400 (see ``keysafe.bounds``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from pydantic import Field

from keysafe.bounds import INT64_MAX, MAX_SECONDS, MAX_VERSION, MAX_VERSIONS_PER_REQUEST
from keysafe.secrets.paths import MAX_PATH_LENGTH

# In bodies.
Version = Annotated[int, Field(ge=1, le=MAX_VERSION, description="a version number")]
VersionList = Annotated[list[Version], Field(max_length=MAX_VERSIONS_PER_REQUEST)]
Seconds = Annotated[int, Field(ge=0, le=MAX_SECONDS, description="seconds")]
PositiveSeconds = Annotated[int, Field(ge=1, le=MAX_SECONDS, description="seconds")]
Counter = Annotated[int, Field(ge=0, le=INT64_MAX)]

# In query strings.
VersionQuery = Annotated[
    int | None, Query(ge=1, le=MAX_VERSION, description="a version number (default: current)")
]
VersionsQuery = Annotated[
    list[Annotated[int, Field(ge=1, le=MAX_VERSION)]] | None,
    Query(max_length=MAX_VERSIONS_PER_REQUEST, description="version numbers (repeatable)"),
]
CursorQuery = Annotated[int, Query(ge=0, le=INT64_MAX, description="resume after this id")]

# A secret path as ``keysafe.secrets.paths.validate_path`` accepts it (reserved folders
# aside): segments of letters, digits, ``_``, ``.`` and ``-`` joined by ``/``.
PATH_PATTERN = r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*$"
SecretPath = Annotated[
    str,
    Path(
        pattern=PATH_PATTERN,
        max_length=MAX_PATH_LENGTH,
        description="a secret path such as payments/prod/STRIPE_KEY",
    ),
]
