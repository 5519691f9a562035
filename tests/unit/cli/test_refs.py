"""Reference expansion as a pure function over a dict of secrets."""

from __future__ import annotations

import pytest

from keysafe.cli.refs import MAX_DEPTH, expand
from keysafe.errors import Forbidden, InvalidInput, NotFound

STORE = {
    "a/b/HOST": "h",
    "a/b/URL": "u://${HOST}/${c/NAME}",
    "c/NAME": "n",
    "a/b/SELF": "${SELF}",
}
FORBIDDEN = {"vault/ROOT"}


def fetch(path: str) -> str:
    if path in FORBIDDEN:
        raise Forbidden("denied")
    if path not in STORE:
        raise NotFound("missing")
    return STORE[path]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", "plain"),
        ("${HOST}", "h"),
        ("${URL}!", "u://h/n!"),
        ("$${HOST} ${HOST}", "${HOST} h"),
        ("$HOST ${ not a ref }", "$HOST ${ not a ref }"),
    ],
)
def test_expand(value: str, expected: str) -> None:
    assert expand("a/b/X", value, fetch) == expected


@pytest.mark.parametrize(
    ("value", "error", "detail"),
    [
        ("${SELF}", InvalidInput, "reference cycle: a/b/SELF -> a/b/SELF"),
        ("${vault/ROOT}", Forbidden, "a/b/X references vault/ROOT, which you may not read"),
        ("${GONE}", NotFound, "a/b/X references a/b/GONE, which does not exist"),
    ],
)
def test_errors_name_paths(value: str, error: type[Exception], detail: str) -> None:
    with pytest.raises(error) as info:
        expand("a/b/X", value, lambda p: fetch(p) if p != "a/b/X" else value)
    assert str(info.value) == detail


def test_depth_is_bounded() -> None:
    chain = {f"d/K{i}": "${K" + str(i + 1) + "}" for i in range(MAX_DEPTH + 5)}
    with pytest.raises(InvalidInput, match="nested deeper"):
        expand("d/K0", chain["d/K0"], lambda p: chain.get(p, "end"))
