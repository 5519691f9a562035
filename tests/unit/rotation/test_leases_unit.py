"""Lease naming, TTL caps, grant templates and the SCRAM verifier (no database)."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg import sql

from keysafe.errors import InvalidInput
from keysafe.rotation.dynamic import (
    MAX_IDENTIFIER_BYTES,
    check_grants,
    new_password,
    render_grant,
    scram_verifier,
    username_for,
)
from keysafe.rotation.lease_models import RoleConfig, cap_expiry, validate_role_name

S = 1_000_000


@pytest.mark.parametrize(
    ("role", "expected_start"),
    [
        ("postgres/reporting", "ks_postgres_reporting_"),
        ("Billing.Prod/read-only", "ks_billing_prod_read_only_"),
        ("x" * 200, "ks_" + "x" * 49 + "_"),
    ],
)
def test_usernames_are_recognisable_and_short(role: str, expected_start: str) -> None:
    name = username_for(role)
    assert name.startswith(expected_start)
    assert len(name.encode()) <= MAX_IDENTIFIER_BYTES
    assert username_for(role) != name  # random suffix


@given(st.text(min_size=1, max_size=300))
def test_any_role_gives_a_safe_identifier(role: str) -> None:
    name = username_for(role)
    assert len(name.encode()) <= MAX_IDENTIFIER_BYTES
    assert name.isascii()
    assert all(c.isalnum() or c == "_" for c in name)


def test_passwords_are_long_random_and_url_safe() -> None:
    a, b = new_password(), new_password()
    assert a != b
    assert len(a) >= 40
    assert all(c.isalnum() or c in "-_" for c in a)


@pytest.mark.parametrize(
    ("now", "increment", "max_at", "expected"),
    [
        (0, 60, 3600 * S, (60 * S, False)),
        (0, 3600, 3600 * S, (3600 * S, False)),
        (0, 3601, 3600 * S, (3600 * S, True)),
        (100 * S, 10**6, 200 * S, (200 * S, True)),
    ],
)
def test_renewal_is_capped_at_the_maximum(
    now: int, increment: int, max_at: int, expected: tuple[int, bool]
) -> None:
    assert cap_expiry(now, increment, max_at) == expected


def test_role_config_checks_ttls_and_defaults() -> None:
    config = RoleConfig.checked("postgres/reporting", connection_secret="db/admin", grants=[])
    assert (config.default_ttl, config.max_ttl) == (3600, 86400)
    short = RoleConfig.checked(
        "postgres/reporting", connection_secret="db/admin", grants=[], max_ttl=600
    )
    assert short.default_ttl == 600
    for bad in ({"default_ttl": 0}, {"max_ttl": 0}, {"default_ttl": 90, "max_ttl": 60}):
        with pytest.raises(InvalidInput):
            RoleConfig.checked(
                "postgres/reporting",
                connection_secret="db/admin",
                grants=[],
                **bad,  # type: ignore[arg-type]
            )
    with pytest.raises(InvalidInput, match="unknown engine"):
        RoleConfig.checked("a/b", connection_secret="db/admin", grants=[], engine="mysql")


@pytest.mark.parametrize(
    "name", ["", "roles/x", "Upper/case", "a//b", "/a", "a/", "a b", "x" * 201, "a/../b"]
)
def test_bad_role_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput):
        validate_role_name(name)


@pytest.mark.parametrize(
    ("grant", "problem"),
    [
        ("ALTER ROLE {{name}} PASSWORD '{{password}}'", "password"),
        ("GRANT x TO {{user}}", "unknown placeholder"),
        ("   ", "empty"),
        ("x" * 5000, "longer"),
    ],
)
def test_bad_grants_are_refused(grant: str, problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem):
        check_grants([grant])


def test_the_generated_name_is_always_a_quoted_identifier() -> None:
    when = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    rendered = render_grant("GRANT SELECT ON t TO {{ name }}; -- until {{expiration}}", 'a"b', when)
    parts = list(rendered)
    assert isinstance(parts[1], sql.Identifier)
    assert isinstance(parts[3], sql.Literal)
    assert parts[1] == sql.Identifier('a"b')


def test_scram_verifier_matches_rfc_7677_test_vector() -> None:
    # RFC 7677 section 3: password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, 4096
    # iterations; the server's signature over the exchange proves our ServerKey.
    import hashlib
    import hmac

    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    verifier = scram_verifier("pencil", salt=salt, iterations=4096)
    head, keys = verifier.split("$", 1)[1].split("$")
    assert head == "4096:W22ZaJ0SNY7soEsUEjb6gQ=="
    server_key = base64.b64decode(keys.split(":")[1])
    nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    auth_message = (
        f"n=user,r=rOprNGfwEbeRWgbNEkqO,r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,"
        f"c=biws,r={nonce}"
    )
    signature = hmac.new(server_key, auth_message.encode(), hashlib.sha256).digest()
    assert base64.b64encode(signature).decode() == "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
