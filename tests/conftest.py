"""Shared fixtures: the PostgreSQL server of this machine (mandatory in CI)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pgtest import pg_schema_url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards.

    Skips when PostgreSQL is unreachable, except in CI (CI=true), where it fails.
    """
    with pg_schema_url("ks_t_") as url:
        yield url


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
