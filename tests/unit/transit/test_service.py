"""Transit keys: round trips, binding to the key's name, vague failures."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keysafe.crypto.keyring import Keyring
from keysafe.errors import InvalidInput, NotFound
from keysafe.transit.service import TransitService


def _service() -> tuple[TransitService, Keyring]:
    ring = Keyring.new()

    def change(fn: Callable[[Keyring], bool]) -> bool:
        return fn(ring)

    return TransitService(lambda: ring, change), ring


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@settings(max_examples=50)
@given(st.binary(max_size=512))
def test_round_trip(plaintext: bytes) -> None:
    svc, _ = _service()
    svc.create("k")
    ciphertext, version = svc.encrypt("k", _b64(plaintext))
    assert version == 1
    assert ciphertext.startswith("vault:v1:")
    assert svc.decrypt("k", ciphertext) == _b64(plaintext)


def test_bound_to_the_key_and_vague_on_failure() -> None:
    svc, ring = _service()
    assert svc.create("a") is True
    assert svc.create("a") is False  # exists: unchanged
    svc.create("b")
    ciphertext, _ = svc.encrypt("a", _b64(b"root key"))
    # The same key bytes under another name still refuse: the name is bound in.
    ring.transit_keys["b"] = dict(ring.transit_keys["a"])
    for bad in (
        lambda: svc.decrypt("b", ciphertext),
        lambda: svc.decrypt("a", ciphertext[:-2] + "AA"),
        lambda: svc.decrypt("a", "vault:v9:" + ciphertext.split(":", 2)[2]),
        lambda: svc.decrypt("a", "not a ciphertext"),
    ):
        with pytest.raises(InvalidInput, match=r"invalid ciphertext|not valid base64"):
            bad()
    with pytest.raises(NotFound):
        svc.encrypt("missing", _b64(b"x"))
    for name in ("", "../x", "a/b", "x" * 65):
        with pytest.raises(InvalidInput):
            svc.create(name)


def test_keys_survive_the_keyring_seal() -> None:
    svc, ring = _service()
    svc.create("k")
    ciphertext, _ = svc.encrypt("k", _b64(b"v"))
    root = b"r" * 32
    ring.recovery_digest = b"d" * 32
    reopened = Keyring.open_with(root, ring.seal_with(root))
    assert reopened.recovery_digest == b"d" * 32
    again = TransitService(lambda: reopened, lambda fn: fn(reopened))
    assert again.decrypt("k", ciphertext) == _b64(b"v")
