"""Rotation value types: option parsing, backoff, the pending value's associated data."""

from __future__ import annotations

import pytest

from keysafe.errors import InvalidInput
from keysafe.rotation.models import (
    backoff_seconds,
    parse_options,
    pending_context,
    secret_options,
)
from keysafe.secrets.models import context


@pytest.mark.parametrize(
    ("raw", "ok"),
    [
        ({}, True),
        ({"length": "48", "target-secret": "a/B"}, True),
        ({"Length": "48"}, False),
        ({"1x": "y"}, False),
        ({"a_b": "y"}, False),
        ({"x": 5}, False),
        ({"x": "a\x00b"}, False),
        ({"x": "y" * 2049}, False),
        ({f"o{i}": "v" for i in range(33)}, False),
    ],
)
def test_parse_options(raw: dict[str, object], ok: bool) -> None:
    if ok:
        assert parse_options(raw) == raw
    else:
        with pytest.raises(InvalidInput):
            parse_options(raw)


def test_secret_options_are_the_ones_naming_secrets() -> None:
    opts = {"target-secret": "db/ADMIN", "signing-secret": "hooks/S", "role": "app"}
    assert secret_options(opts) == ["hooks/S", "db/ADMIN"]


@pytest.mark.parametrize(
    ("failures", "every", "delay"),
    [(1, 86400, 30), (2, 86400, 60), (5, 86400, 480), (20, 86400, 6 * 3600), (20, 600, 600)],
)
def test_backoff_doubles_and_is_capped(failures: int, every: int, delay: int) -> None:
    assert backoff_seconds(failures, every) == delay


def test_pending_context_never_equals_a_version_context() -> None:
    pending = pending_context("a/B", "rot_1")
    assert pending != context("a/B", 1)
    assert pending != pending_context("a/B", "rot_2")
    assert pending != pending_context("a/C", "rot_1")
