"""Shamir shares and unseal keys for the root key."""

from __future__ import annotations

import itertools

import pytest

from keysafe.crypto import rootkey
from keysafe.crypto.barrier import Barrier
from keysafe.crypto.keyring import Keyring
from keysafe.errors import Conflict, InvalidInput, Sealed


def test_any_threshold_subset_rebuilds_the_key() -> None:
    key = rootkey.new_root_key()
    shares = rootkey.split(key, 5, 3)
    assert len(set(shares)) == 5
    for subset in itertools.combinations(shares, 3):
        assert rootkey.combine(list(subset)) == key


def test_too_few_shares_do_not_combine() -> None:
    shares = rootkey.split(rootkey.new_root_key(), 5, 3)
    with pytest.raises(rootkey.BadShare):
        rootkey.combine(shares[:2])


def test_a_typo_is_caught_and_not_echoed() -> None:
    share = rootkey.split(rootkey.new_root_key(), 3, 2)[0]
    words = share.split()
    words[5] = "academic" if words[5] != "academic" else "acid"
    with pytest.raises(rootkey.BadShare) as info:
        rootkey.check_share(" ".join(words))
    assert words[0] not in str(info.value)


def test_unseal_key_text_round_trip_and_truncation() -> None:
    key = rootkey.new_root_key()
    text = rootkey.encode_unseal_key(key)
    assert text.startswith("ksu1_")
    assert rootkey.decode_unseal_key(text + "\n") == key
    for broken in (text[:-3], text.replace("ksu1_", "ksu2_"), text[:20] + "A" + text[21:]):
        with pytest.raises(rootkey.BadShare):
            rootkey.decode_unseal_key(broken)


def test_barrier_unseals_with_threshold_and_resets_on_wrong_set() -> None:
    key = rootkey.new_root_key()
    blob = Keyring.new().seal_with(key)
    shares = rootkey.split(key, 5, 3)
    barrier = Barrier()
    with pytest.raises(Sealed):
        barrier.keyring()
    assert barrier.add_share(shares[0], 3, blob) is False
    nonce = barrier.nonce
    assert nonce
    assert barrier.add_share(shares[0], 3, blob, nonce) is False  # duplicates do not count
    assert barrier.progress == 1
    with pytest.raises(InvalidInput):
        barrier.add_share("not a share at all", 3, blob, nonce)
    assert barrier.progress == 1
    assert barrier.add_share(shares[1], 3, blob, nonce) is False
    assert barrier.add_share(shares[4], 3, blob, nonce) is True
    assert not barrier.sealed
    assert barrier.nonce is None
    barrier.seal()
    assert barrier.sealed
    foreign = rootkey.split(rootkey.new_root_key(), 5, 3)
    barrier.add_share(foreign[0], 3, blob)
    nonce = barrier.nonce
    barrier.add_share(foreign[1], 3, blob, nonce)
    with pytest.raises(InvalidInput, match="progress was reset"):
        barrier.add_share(foreign[2], 3, blob, nonce)
    assert barrier.progress == 0
    assert barrier.sealed


def test_unseal_progress_is_bound_to_its_nonce() -> None:
    key = rootkey.new_root_key()
    blob = Keyring.new().seal_with(key)
    shares = rootkey.split(key, 5, 3)
    foreign = rootkey.split(rootkey.new_root_key(), 5, 3)
    barrier = Barrier()
    barrier.reset_progress(None)  # nothing running: nothing to do
    assert barrier.add_share(shares[0], 3, blob, "a stale nonce is ignored") is False
    nonce = barrier.nonce
    assert nonce is not None
    # Without the nonce nobody resets the attempt nor adds (or spoils with) a share.
    for wrong in (None, "", "0" * len(nonce), nonce[:-1]):
        with pytest.raises(Conflict):
            barrier.reset_progress(wrong)
        with pytest.raises(Conflict):
            barrier.add_share(foreign[0], 3, blob, wrong)
    assert barrier.progress == 1
    assert barrier.nonce == nonce
    assert barrier.add_share(shares[1], 3, blob, nonce) is False
    barrier.reset_progress(nonce)
    assert barrier.progress == 0
    assert barrier.nonce is None
    # A new attempt has a new nonce; the old one is refused while it runs.
    barrier.add_share(shares[0], 3, blob)
    assert barrier.nonce not in (None, nonce)
    with pytest.raises(Conflict):
        barrier.add_share(shares[1], 3, blob, nonce)


def test_an_abandoned_unseal_attempt_expires() -> None:
    key = rootkey.new_root_key()
    blob = Keyring.new().seal_with(key)
    shares = rootkey.split(key, 5, 3)
    barrier = Barrier(attempt_seconds=60)
    clock = [1000.0]
    barrier._now = lambda: clock[0]
    barrier.add_share(shares[0], 3, blob)
    first = barrier.nonce
    clock[0] += 59
    assert barrier.progress == 1
    clock[0] += 2
    assert barrier.progress == 0
    assert barrier.nonce is None
    barrier.add_share(shares[1], 3, blob)  # anyone may start the next attempt
    assert barrier.nonce not in (None, first)
