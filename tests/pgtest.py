"""The PostgreSQL server of this machine for tests: one fresh schema per use.

Skips when PostgreSQL is unreachable, except in CI (CI=true), where it fails.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator

import pytest

PG_BASE = os.environ.get("KEYSAFE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_problem() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_BASE, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None


@contextlib.contextmanager
def pg_schema_url(prefix: str = "ks_it_") -> Iterator[str]:
    """A URL whose search_path is a fresh ``<prefix><random>`` schema, dropped afterwards.

    Skips when PostgreSQL is unreachable, except in CI (CI=true), where it fails.
    """
    problem = _pg_problem()
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI but unreachable: {problem}")
        pytest.skip(f"PostgreSQL unreachable: {problem}")
    import psycopg

    schema = prefix + secrets.token_hex(6)
    with psycopg.connect(PG_BASE, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    url = f"{PG_BASE}?options=-csearch_path%3D{schema}"
    # The URL really reaches the schema (libpq applies the options parameter).
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT current_schema()").fetchone()
        assert row is not None, row
        assert row[0] == schema, row
    try:
        yield url
    finally:
        with psycopg.connect(PG_BASE, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
