"""Envelope encryption and the keyring: round trips, binding, tampering, rotation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keysafe.crypto.envelope import DecryptionFailed, generate_key, open_sealed, seal
from keysafe.crypto.keyring import Envelope, Keyring


@given(plaintext=st.binary(max_size=4096), aad=st.binary(max_size=64))
def test_seal_round_trip(plaintext: bytes, aad: bytes) -> None:
    key = generate_key()
    assert open_sealed(key, seal(key, plaintext, aad), aad) == plaintext


def test_nonces_are_never_reused() -> None:
    key = generate_key()
    blobs = {seal(key, b"same", b"")[:12] for _ in range(1000)}
    assert len(blobs) == 1000


@pytest.mark.parametrize("change", ["key", "aad", "bit", "truncate"])
def test_any_mismatch_is_one_vague_error(change: str) -> None:
    key, aad = generate_key(), b"ctx"
    blob = seal(key, b"secret", aad)
    if change == "key":
        key = generate_key()
    elif change == "aad":
        aad = b"other"
    elif change == "bit":
        blob = blob[:-1] + bytes([blob[-1] ^ 1])
    else:
        blob = blob[:10]
    with pytest.raises(DecryptionFailed):
        open_sealed(key, blob, aad)


@given(value=st.binary(max_size=2048), path=st.text(min_size=1, max_size=40))
def test_keyring_round_trip(value: bytes, path: str) -> None:
    ring = Keyring.new()
    ctx = path.encode() + b"\x00" + b"1"
    assert ring.decrypt(ring.encrypt(value, ctx), ctx) == value


def test_ciphertext_is_bound_to_secret_and_version() -> None:
    ring = Keyring.new()
    env = ring.encrypt(b"value", b"a/b\x001")
    for other in (b"a/b\x002", b"a/c\x001"):
        with pytest.raises(DecryptionFailed):
            ring.decrypt(env, other)


def test_swapping_wrapped_keys_between_rows_fails() -> None:
    ring = Keyring.new()
    one = ring.encrypt(b"one", b"x\x001")
    two = ring.encrypt(b"two", b"y\x001")
    mixed = Envelope(one.kek_version, two.wrapped_dek, one.ciphertext)
    with pytest.raises(DecryptionFailed):
        ring.decrypt(mixed, b"x\x001")


def test_rotation_first_key_encrypts_any_key_decrypts() -> None:
    ring = Keyring.new()
    old = ring.encrypt(b"old", b"c")
    assert ring.rotate() == 2
    new = ring.encrypt(b"new", b"c")
    assert (old.kek_version, new.kek_version) == (1, 2)
    assert ring.decrypt(old, b"c") == b"old"
    rewrapped = ring.rewrap(old, b"c")
    assert rewrapped.kek_version == 2
    assert rewrapped.ciphertext == old.ciphertext  # the value is not re-encrypted
    assert ring.decrypt(rewrapped, b"c") == b"old"


def test_keyring_sealed_under_root_key() -> None:
    ring = Keyring.new()
    ring.rotate()
    root = generate_key()
    blob = ring.seal_with(root)
    again = Keyring.open_with(root, blob)
    assert again.keks == ring.keks
    assert again.audit_hmac_key == ring.audit_hmac_key
    for key in ring.keks.values():
        assert key not in blob
    with pytest.raises(DecryptionFailed):
        Keyring.open_with(generate_key(), blob)


def test_audit_anchor_flag_is_sealed_with_the_keyring() -> None:
    """New vaults anchor their audit chain; a keyring sealed before the flag existed
    opens as not anchored (its trail verifies the old way)."""
    import base64
    import json

    root = generate_key()
    ring = Keyring.new()
    assert ring.audit_anchored
    assert Keyring.open_with(root, ring.seal_with(root)).audit_anchored
    ring.audit_anchored = False
    legacy = json.loads(open_sealed(root, ring.seal_with(root), b"keysafe:keyring:v1").decode())
    assert "audit_anchored" not in legacy
    assert base64.b64decode(legacy["audit_hmac_key"]) == ring.audit_hmac_key
    assert not Keyring.open_with(root, ring.seal_with(root)).audit_anchored
