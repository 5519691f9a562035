"""The random rotator: options checked at policy time, values drawn as asked."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keysafe.errors import InvalidInput
from keysafe.rotation.rotators.base import RotationContext
from keysafe.rotation.rotators.random import ALPHABETS, RandomRotator


def _ctx(options: dict[str, str]) -> RotationContext:
    def no_reads(path: str) -> str:
        raise AssertionError(path)

    return RotationContext(path="a/B", options=options, current=None, read_secret=no_reads)


@pytest.mark.parametrize(
    ("options", "ok"),
    [
        ({}, True),
        ({"length": "48"}, True),
        ({"length": "8"}, True),
        ({"length": "4096"}, True),
        ({"length": "7"}, False),
        ({"length": "4097"}, False),
        ({"length": "-1"}, False),
        ({"length": "ten"}, False),
        ({"alphabet": "hex"}, True),
        ({"alphabet": "chars:ab"}, True),
        ({"alphabet": "chars:a"}, False),  # one symbol: no entropy
        ({"alphabet": "chars:aaaa"}, False),
        ({"alphabet": "emoji"}, False),
        ({"format": "whsec_{value}"}, True),
        ({"format": "{value}{value}"}, False),
        ({"format": "static"}, False),
        ({"role": "x"}, False),  # not an option of this rotator
    ],
)
def test_options(options: dict[str, str], ok: bool) -> None:
    if ok:
        RandomRotator().check_options(options)
    else:
        with pytest.raises(InvalidInput):
            RandomRotator().check_options(options)


@given(
    length=st.integers(8, 200),
    alphabet=st.sampled_from(sorted(ALPHABETS)),
)
def test_values_follow_the_options(length: int, alphabet: str) -> None:
    options = {"length": str(length), "alphabet": alphabet, "format": "pre_{value}_post"}
    value = RandomRotator().generate(_ctx(options))
    body = value.removeprefix("pre_").removesuffix("_post")
    assert len(body) == length
    assert set(body) <= set(ALPHABETS[alphabet])


def test_defaults_and_uniqueness() -> None:
    values = {RandomRotator().generate(_ctx({})) for _ in range(200)}
    assert len(values) == 200
    assert all(len(v) == 32 and set(v) <= set(string.ascii_letters + string.digits) for v in values)


def test_steps_touch_nothing() -> None:
    rotator = RandomRotator()
    ctx = _ctx({})
    rotator.apply(ctx, "x")
    rotator.verify(ctx, "x")
    rotator.retire(ctx, "x")
