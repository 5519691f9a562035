"""TOTP verification with drift window and replay refusal; QR rendering; recovery codes."""

from __future__ import annotations

import base64
import re
from urllib.parse import parse_qs, unquote, urlsplit

import pyotp
import pytest
import segno
from hypothesis import given
from hypothesis import strategies as st

from keysafe.access.totp import (
    RECOVERY_CODE_ALPHABET,
    hash_recovery_code,
    new_recovery_codes,
    new_totp_secret,
    normalise_recovery_code,
    provisioning_uri,
    qr_text,
    verify_recovery_code,
    verify_totp,
)
from keysafe.errors import IntegrityError, InvalidInput

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
NOW = 1_800_000_015.0  # 15 s into a 30-s step
STEP = int(NOW) // 30
KEY = bytes(range(32))


def code_at(step: int) -> str:
    return pyotp.TOTP(SECRET).at(step * 30)


# -- TOTP --------------------------------------------------------------------------------


def test_new_secret_is_160_bits_of_base32() -> None:
    secret = new_totp_secret()
    assert len(base64.b32decode(secret)) == 20
    assert secret != new_totp_secret()


def test_valid_code_now_returns_its_step() -> None:
    assert verify_totp(SECRET, code_at(STEP), NOW, None) == STEP


@pytest.mark.parametrize("offset", [-1, 1])
def test_code_from_a_neighbouring_step_is_accepted(offset: int) -> None:
    assert verify_totp(SECRET, code_at(STEP + offset), NOW, None) == STEP + offset


@pytest.mark.parametrize("offset", [-3, -2, 2, 3])
def test_code_from_further_away_is_refused(offset: int) -> None:
    code = code_at(STEP + offset)
    assume_distinct = {code_at(STEP + d) for d in (-1, 0, 1)}
    if code in assume_distinct:  # a 1-in-10^6 coincidence of the fixed secret
        pytest.skip("code collides with one inside the window")
    assert verify_totp(SECRET, code, NOW, None) is None


def test_replay_of_the_same_step_is_refused() -> None:
    used = verify_totp(SECRET, code_at(STEP), NOW, None)
    assert used == STEP
    assert verify_totp(SECRET, code_at(STEP), NOW + 5, used) is None
    # ...and so is an older step still inside the window.
    assert verify_totp(SECRET, code_at(STEP - 1), NOW + 5, used) is None
    # The next step works once its time comes.
    assert verify_totp(SECRET, code_at(STEP + 1), NOW + 30, used) == STEP + 1


@pytest.mark.parametrize(
    "code", ["", "12345", "1234567", "12345a", "abcdef", "12 34 5", "١٢٣٤٥٦", "-12345", "+12345"]
)
def test_non_digit_or_short_codes_are_refused(code: str) -> None:
    assert verify_totp(SECRET, code, NOW, None) is None


def test_spaces_typed_into_a_code_are_ignored() -> None:
    code = code_at(STEP)
    assert verify_totp(SECRET, f" {code[:3]} {code[3:]} ", NOW, None) == STEP


def test_malformed_secret_is_an_integrity_error() -> None:
    with pytest.raises(IntegrityError):
        verify_totp("not base32 !!", "123456", NOW, None)


def test_provisioning_uri_names_issuer_and_account() -> None:
    uri = provisioning_uri(SECRET, "alice@example.com")
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert unquote(parts.path) == "/keysafe:alice@example.com"
    query = parse_qs(parts.query)
    assert query["issuer"] == ["keysafe"]
    assert query["secret"] == [SECRET]
    assert "issuer=Acme" in provisioning_uri(SECRET, "bob", issuer="Acme")


# -- QR ----------------------------------------------------------------------------------

_HALF_BLOCKS = {" ": (1, 1), "\u2580": (0, 1), "\u2584": (1, 0), "\u2588": (0, 0)}


def decode_half_blocks(text: str) -> list[list[int]]:
    """Rebuild the module matrix (1 = dark) from the text, two rows per line."""
    rows: list[list[int]] = []
    for line in text.splitlines():
        pairs = [_HALF_BLOCKS[ch] for ch in line]
        rows.append([top for top, _ in pairs])
        rows.append([bottom for _, bottom in pairs])
    return rows


def test_qr_text_is_multiline_and_draws_exactly_the_qr_code() -> None:
    uri = provisioning_uri(SECRET, "alice@example.com")
    text = qr_text(uri)
    lines = text.splitlines()
    assert len(lines) > 10
    assert len({len(line) for line in lines}) == 1  # a rectangle

    expected = segno.make_qr(uri, error="m")
    size = len(expected.matrix)
    border = 4
    # An odd number of rows leaves half a line of padding at the bottom: drop it.
    drawn = decode_half_blocks(text)[: size + 2 * border]
    assert len(drawn) == size + 2 * border
    # The quiet zone is light all round, and inside it sit exactly segno's modules.
    quiet = drawn[:border] + drawn[-border:] + [r[:border] + r[-border:] for r in drawn]
    assert all(module == 0 for row in quiet for module in row)
    inner = [row[border : border + size] for row in drawn[border : border + size]]
    assert inner == [list(row) for row in expected.matrix]


def test_qr_text_with_ansi_colours_wraps_every_line() -> None:
    text = qr_text("otpauth://totp/keysafe:x?secret=JBSWY3DP&issuer=keysafe", ansi=True)
    for line in text.splitlines():
        assert line.startswith("\x1b[97;40m")
        assert line.endswith("\x1b[0m")


# -- recovery codes ----------------------------------------------------------------------


def test_recovery_codes_are_unique_well_formed_and_60_bits() -> None:
    codes = new_recovery_codes()
    assert len(codes) == 10
    assert len(set(codes)) == 10
    for code in codes:
        assert re.fullmatch(
            r"[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}", code
        )
    assert len(RECOVERY_CODE_ALPHABET) == len(set(RECOVERY_CODE_ALPHABET)) == 32  # 5 bits/char
    assert not set("ilou") & set(RECOVERY_CODE_ALPHABET)


@pytest.mark.parametrize("n", [0, -1, 101])
def test_recovery_code_count_is_bounded(n: int) -> None:
    with pytest.raises(InvalidInput):
        new_recovery_codes(n)


@pytest.mark.parametrize(
    ("typed", "canonical"),
    [
        ("ab12-cd34-ef56", "ab12cd34ef56"),
        ("AB12-CD34-EF56", "ab12cd34ef56"),
        ("ab12cd34ef56", "ab12cd34ef56"),
        (" ab12 cd34 ef56 ", "ab12cd34ef56"),
        ("abI2-cdO4-eL56", "ab12cd04e156"),
        ("ab12-cd34-ef5", None),
        ("ab12-cd34-ef567", None),
        ("ab12-cd34-ef5u", None),
        ("ab12-cd34-ef5!", None),
    ],
)
def test_recovery_codes_are_normalised(typed: str, canonical: str | None) -> None:
    assert normalise_recovery_code(typed) == canonical


@given(
    raw=st.text(st.sampled_from(RECOVERY_CODE_ALPHABET), min_size=12, max_size=12),
    upper=st.lists(st.booleans(), min_size=12, max_size=12),
    separators=st.lists(st.sampled_from(["", "-", " "]), min_size=12, max_size=12),
)
def test_any_spelling_of_a_code_normalises_to_it(
    raw: str, upper: list[bool], separators: list[str]
) -> None:
    typed = "".join(
        (c.upper() if up else c) + sep for c, up, sep in zip(raw, upper, separators, strict=True)
    )
    assert normalise_recovery_code(typed) == raw
    assert hash_recovery_code(typed, KEY) == hash_recovery_code(raw, KEY)


def test_recovery_code_hash_is_keyed_and_ignores_case_and_dashes() -> None:
    code = new_recovery_codes(1)[0]
    digest = hash_recovery_code(code, KEY)
    assert len(digest) == 32
    assert hash_recovery_code(code.upper().replace("-", ""), KEY) == digest
    assert hash_recovery_code(code, bytes(32)) != digest
    assert code.encode() not in digest


def test_recovery_code_hashing_refuses_garbage_and_short_keys() -> None:
    with pytest.raises(InvalidInput):
        hash_recovery_code("nope", KEY)
    with pytest.raises(InvalidInput):
        hash_recovery_code(new_recovery_codes(1)[0], b"short")
    with pytest.raises(InvalidInput):
        verify_recovery_code(new_recovery_codes(1)[0], [], b"short")


def test_each_recovery_code_verifies_once() -> None:
    codes = new_recovery_codes()
    stored: list[bytes | None] = [hash_recovery_code(c, KEY) for c in codes]

    index = verify_recovery_code(codes[3].upper(), stored, KEY)
    assert index == 3
    stored[index] = None  # the caller marks it used
    assert verify_recovery_code(codes[3], stored, KEY) is None
    assert verify_recovery_code(codes[7], stored, KEY) == 7


def test_unknown_or_malformed_recovery_codes_do_not_verify() -> None:
    codes = new_recovery_codes()
    stored = [hash_recovery_code(c, KEY) for c in codes]
    others = [c for c in new_recovery_codes(5) if c not in codes]
    for other in others:
        assert verify_recovery_code(other, stored, KEY) is None
    assert verify_recovery_code("", stored, KEY) is None
    assert verify_recovery_code("not-a-code", stored, KEY) is None
    # Hashes made under another key are worthless.
    assert verify_recovery_code(codes[0], stored, bytes(32)) is None
