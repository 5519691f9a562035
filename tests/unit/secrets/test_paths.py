"""Secret path validation (table-driven plus a property)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keysafe.errors import InvalidInput
from keysafe.secrets.paths import folder_prefix, validate_path

SEGMENT = st.from_regex(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,10}", fullmatch=True).filter(
    lambda s: s not in (".", "..", "sys", "creds")
)


@given(st.lists(SEGMENT, min_size=1, max_size=6))
def test_valid_paths_pass(segments: list[str]) -> None:
    path = "/".join(segments)
    assert validate_path(path) == path


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("", "required"),
        ("a//b", "empty segment"),
        ("/a", "empty segment"),
        ("a/", "empty segment"),
        ("a/../b", "'..'"),
        ("a/b c", "letters, digits"),
        ("a/$HOME", "letters, digits"),
        ("x" * 513, "longer than"),
        ("sys/key/billing", "reserved"),
        ("sys", "reserved"),
        ("creds/postgres/reporting", "reserved"),
    ],
)
def test_invalid_paths_say_why(path: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        validate_path(path)


def test_folder_prefix() -> None:
    assert folder_prefix("payments/dev") == "payments/dev/"
    assert folder_prefix("payments/dev/") == "payments/dev/"
    assert folder_prefix("") == ""
