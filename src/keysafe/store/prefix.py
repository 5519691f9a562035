"""Case-sensitive prefix matching that means the same on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, func, true


def starts_with(column: Any, prefix: str) -> ColumnElement[bool]:
    """``column`` starts with ``prefix``, exactly, letter case included.

    SQLite's LIKE ignores ASCII case (``APP/`` would match ``app/...``), so the LIKE is
    kept only as the coarse filter PostgreSQL can serve from an index, and an exact
    ``substr`` comparison decides.
    """
    if not prefix:
        return true()
    return and_(
        column.startswith(prefix, autoescape=True),
        func.substr(column, 1, len(prefix)) == prefix,
    )
