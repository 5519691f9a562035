"""The credential format: prefix, randomness and checksum."""

from __future__ import annotations

import pytest

from keysafe.crypto import keyformat


def test_generated_credentials_parse_and_differ() -> None:
    tokens = {keyformat.generate("tok") for _ in range(200)}
    assert len(tokens) == 200
    assert all(keyformat.parse(t) == "tok" for t in tokens)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "ks_tok_",
        "ks_tok_" + "a" * 38,  # right shape, wrong checksum
        "ks_TOK_" + "a" * 38,
        "kt_tok_" + "a" * 38,
    ],
)
def test_look_alikes_are_rejected(text: str) -> None:
    assert keyformat.parse(text) is None


def test_one_changed_character_breaks_the_checksum() -> None:
    token = keyformat.generate("root")
    flipped = token[:10] + ("B" if token[10] != "B" else "C") + token[11:]
    assert not keyformat.is_valid(flipped)
