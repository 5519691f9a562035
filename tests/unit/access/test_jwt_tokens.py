"""Short-lived JWT access tokens: issue, verify, rotate, refuse everything else."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given
from hypothesis import strategies as st

from keysafe.access.jwt_tokens import (
    MAX_TOKEN_TTL_SECONDS,
    AccessTokenRejected,
    MemoryRevocationList,
    PublicKeySet,
    SigningKey,
    SigningKeySet,
    introspect,
    issue_access_token,
    verify_access_token,
)
from keysafe.errors import InvalidInput, Unauthenticated, Unavailable

ISSUER = "https://keysafe.example"
AUDIENCE = "keysafe-api"
T0 = 1_800_000_000.0
TTL = 600


@pytest.fixture
def keys() -> SigningKeySet:
    return SigningKeySet.new(T0 - 100)


def issue(keys: SigningKeySet, now: float = T0, **overrides: Any) -> tuple[str, dict[str, Any]]:
    args: dict[str, Any] = {
        "issuer": ISSUER,
        "subject": "svc-ci",
        "audience": AUDIENCE,
        "scope": ["secrets:read", "secrets:list"],
        "ttl_seconds": TTL,
        "now": now,
    }
    args.update(overrides)
    return issue_access_token(keys, **args)


def verify(token: str, keys: Any, now: float = T0, **kwargs: Any) -> dict[str, Any]:
    return verify_access_token(token, keys, issuer=ISSUER, audience=AUDIENCE, now=now, **kwargs)


def refusal(token: str, keys: Any, now: float = T0, **kwargs: Any) -> str:
    """The audit reason a token is refused for (fails the test if it is accepted)."""
    with pytest.raises(AccessTokenRejected) as info:
        verify(token, keys, now, **kwargs)
    return info.value.reason


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def good_claims(now: float = T0, ttl: int = TTL) -> dict[str, Any]:
    iat = int(now)
    return {
        "iss": ISSUER,
        "sub": "svc-ci",
        "aud": AUDIENCE,
        "iat": iat,
        "nbf": iat,
        "exp": iat + ttl,
        "jti": "jti-1",
        "scope": "secrets:read",
    }


def sign_with(keys: SigningKeySet, claims: dict[str, Any], **header: Any) -> str:
    """A token genuinely signed by our current key, with whatever claims a test needs."""
    key = keys.current(T0)
    headers = {"kid": key.kid, "typ": "at+jwt", **header}
    private = Ed25519PrivateKey.from_private_bytes(key.private_key)
    return jwt.encode(claims, private, algorithm="EdDSA", headers=headers)


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(claims).encode())
    return f"{head}.{body}.{b64url(signature)}"


# -- the happy path ----------------------------------------------------------------------


def test_round_trip(keys: SigningKeySet) -> None:
    token, claims = issue(keys)
    assert verify(token, keys) == claims
    assert claims["iss"] == ISSUER
    assert claims["sub"] == claims["client_id"] == "svc-ci"
    assert claims["aud"] == AUDIENCE
    assert claims["scope"] == "secrets:read secrets:list"
    assert claims["iat"] == claims["nbf"] == int(T0)
    assert claims["exp"] == int(T0) + TTL
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "EdDSA", "kid": keys.current(T0).kid, "typ": "at+jwt"}


_SCOPE = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs", "Zs", "Zl", "Zp", "Cc"]),
    min_size=1,
    max_size=20,
)


@given(
    subject=st.text(min_size=1, max_size=40),
    scope=st.lists(_SCOPE, max_size=5),
    ttl=st.integers(min_value=1, max_value=MAX_TOKEN_TTL_SECONDS),
    now=st.integers(min_value=1_000_000_000, max_value=4_000_000_000),
)
def test_round_trip_for_any_claims(subject: str, scope: list[str], ttl: int, now: int) -> None:
    keys = SigningKeySet.new(now)
    token, claims = issue(keys, now=now, subject=subject, scope=scope, ttl_seconds=ttl)
    assert verify(token, keys, now=now + ttl - 1) == claims
    assert claims["scope"].split() == scope
    assert refusal(token, keys, now=now + ttl + 30) == "expired"


def test_jti_is_random(keys: SigningKeySet) -> None:
    jtis = {issue(keys)[1]["jti"] for _ in range(20)}
    assert len(jtis) == 20
    assert all(len(j) >= 22 for j in jtis)


def test_extra_claims_are_carried_but_cannot_override(keys: SigningKeySet) -> None:
    token, _ = issue(keys, extra_claims={"tenant": "acme"})
    assert verify(token, keys)["tenant"] == "acme"
    with pytest.raises(InvalidInput, match="override"):
        issue(keys, extra_claims={"sub": "root"})


@pytest.mark.parametrize("ttl", [MAX_TOKEN_TTL_SECONDS + 1, 86_400, 0, -5])
def test_ttl_outside_one_hour_is_refused_at_issue(keys: SigningKeySet, ttl: int) -> None:
    with pytest.raises(InvalidInput):
        issue(keys, ttl_seconds=ttl)


def test_ttl_of_exactly_one_hour_is_allowed(keys: SigningKeySet) -> None:
    _, claims = issue(keys, ttl_seconds=MAX_TOKEN_TTL_SECONDS)
    assert claims["exp"] - claims["iat"] == 3600


def test_scope_with_spaces_is_refused(keys: SigningKeySet) -> None:
    with pytest.raises(InvalidInput):
        issue(keys, scope=["read write"])


def test_verifier_holding_only_the_jwks_verifies(keys: SigningKeySet) -> None:
    token, claims = issue(keys)
    published = json.loads(json.dumps(keys.jwks()))  # as fetched over HTTP
    assert verify(token, PublicKeySet.from_jwks(published)) == claims


def test_jwks_has_public_keys_only(keys: SigningKeySet) -> None:
    keys.rotate(T0, overlap=60)
    jwks = keys.jwks()
    assert len(jwks["keys"]) == 2
    for jwk in jwks["keys"]:
        assert set(jwk) == {"kty", "crv", "x", "kid", "use", "alg"}
        assert (jwk["kty"], jwk["crv"], jwk["use"], jwk["alg"]) == (
            "OKP",
            "Ed25519",
            "sig",
            "EdDSA",
        )
        assert len(base64.urlsafe_b64decode(jwk["x"] + "=")) == 32


# -- rotation ----------------------------------------------------------------------------


def test_rotation_overlap_keeps_old_tokens_valid_until_retire(keys: SigningKeySet) -> None:
    old_kid = keys.current(T0).kid
    token, _ = issue(keys, now=T0, ttl_seconds=3600)  # signed just before rotation
    new = keys.rotate(T0 + 1, overlap=300)

    assert keys.current(T0 + 1).kid == new.kid != old_kid
    new_token, _ = issue(keys, now=T0 + 2)
    assert jwt.get_unverified_header(new_token)["kid"] == new.kid
    # Both verify after rotation, from the key set and from the published JWKS.
    for verifier in (keys, PublicKeySet.from_jwks(keys.jwks(T0 + 2))):
        verify(token, verifier, now=T0 + 2)
        verify(new_token, verifier, now=T0 + 2)
    verify(token, keys, now=T0 + 3599)  # still good near its own expiry

    old = next(k for k in keys.keys if k.kid == old_kid)
    assert old.retire_at == T0 + 1 + keys.max_token_ttl + 300
    assert refusal(token, keys, now=old.retire_at) == "retired_key"
    assert old_kid not in {k["kid"] for k in keys.jwks(old.retire_at)["keys"]}
    assert keys.prune(old.retire_at) == [old_kid]
    assert refusal(token, keys, now=old.retire_at) == "unknown_kid"


def test_prepublished_key_is_in_jwks_before_it_signs(keys: SigningKeySet) -> None:
    old_kid = keys.current(T0).kid
    new = keys.rotate(T0, overlap=60, prepublish=900)
    assert new.kid in {k["kid"] for k in keys.jwks(T0)["keys"]}
    assert keys.current(T0 + 899).kid == old_kid
    assert keys.current(T0 + 900).kid == new.kid
    old = next(k for k in keys.keys if k.kid == old_kid)
    assert old.not_after_for_signing == T0 + 900
    assert old.retire_at == T0 + 900 + 3600 + 60


def test_token_signed_by_a_retired_key_is_refused_even_if_unexpired(
    keys: SigningKeySet,
) -> None:
    token, _ = issue(keys)
    leaked = keys.current(T0).kid
    keys.rotate(T0 + 1, overlap=300)
    keys.retire(leaked, T0 + 2)
    assert refusal(token, keys, now=T0 + 2) == "retired_key"
    assert leaked not in {k["kid"] for k in keys.jwks(T0 + 2)["keys"]}


def test_token_minted_by_a_key_after_it_stopped_signing_is_refused(
    keys: SigningKeySet,
) -> None:
    old = keys.current(T0)
    keys.rotate(T0, overlap=300)
    # Someone holding a copy of the old key signs a fresh token during the overlap.
    late = jwt.encode(
        good_claims(now=T0 + 600),
        Ed25519PrivateKey.from_private_bytes(old.private_key),
        algorithm="EdDSA",
        headers={"kid": old.kid, "typ": "at+jwt"},
    )
    assert refusal(late, keys, now=T0 + 600) == "issued_after_key_stopped_signing"


@pytest.mark.parametrize("typ", ["AT+JWT", "application/at+jwt"])
def test_typ_compares_case_insensitively(keys: SigningKeySet, typ: str) -> None:
    verify(sign_with(keys, good_claims(), typ=typ), keys)


def test_no_signing_key_is_unavailable() -> None:
    keys = SigningKeySet.new(T0)
    keys.retire(keys.current(T0).kid, T0)
    with pytest.raises(Unavailable):
        issue(keys, now=T0 + 1)


def test_key_set_round_trips_through_plain_dicts(keys: SigningKeySet) -> None:
    keys.rotate(T0, overlap=60)
    token, claims = issue(keys)
    stored = json.loads(json.dumps(keys.to_dicts()))  # what the keyring JSON holds
    restored = SigningKeySet.from_dicts(stored)
    assert [k.to_dict() for k in restored.keys] == stored
    assert verify(token, restored) == claims


def test_signing_key_never_shows_its_private_key(keys: SigningKeySet) -> None:
    key = keys.current(T0)
    assert key.to_dict()["private_key"] not in repr(key)
    assert key.private_key.hex() not in repr(key)


def test_signing_key_from_dict_refuses_a_mismatched_kid(keys: SigningKeySet) -> None:
    doc = keys.current(T0).to_dict()
    with pytest.raises(InvalidInput):
        SigningKey.from_dict({**doc, "kid": "someone-else"})
    with pytest.raises(InvalidInput):
        SigningKey.from_dict({**doc, "private_key": b64url(b"short")})
    with pytest.raises(InvalidInput):
        SigningKey.from_dict({"kid": "x"})


# -- refusals ----------------------------------------------------------------------------


def test_alg_none_is_refused(keys: SigningKeySet) -> None:
    header = {"alg": "none", "typ": "at+jwt", "kid": keys.current(T0).kid}
    assert refusal(unsigned(header, good_claims()), keys) == "algorithm_not_allowed"
    header["alg"] = "None"
    assert refusal(unsigned(header, good_claims()), keys) == "algorithm_not_allowed"


@pytest.mark.parametrize("form", ["raw", "pem", "jwk_x", "jwks_json"])
def test_hs256_signed_with_the_public_key_is_refused(keys: SigningKeySet, form: str) -> None:
    """The classic confusion: HMAC keyed with the (public) verification key."""
    key = keys.current(T0)
    public = key.public_key()
    secret = {
        "raw": public.public_bytes(Encoding.Raw, PublicFormat.Raw),
        "pem": public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo),
        "jwk_x": key.jwk()["x"].encode(),
        "jwks_json": json.dumps(keys.jwks()).encode(),
    }[form]
    header = {"alg": "HS256", "typ": "at+jwt", "kid": key.kid}
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(good_claims()).encode())
    signature = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    assert refusal(f"{head}.{body}.{b64url(signature)}", keys) == "algorithm_not_allowed"


def test_token_from_another_issuer_is_refused(keys: SigningKeySet) -> None:
    elsewhere = SigningKeySet.new(T0)
    foreign, _ = issue(elsewhere)
    assert refusal(foreign, keys) == "unknown_kid"
    # Even signed by our key, a token naming another issuer is not ours to accept.
    ours_but_other_iss, _ = issue(keys, issuer="https://other.example")
    assert refusal(ours_but_other_iss, keys) == "wrong_issuer"


def test_token_for_another_audience_is_refused(keys: SigningKeySet) -> None:
    token, _ = issue(keys, audience="billing-api")
    assert refusal(token, keys) == "wrong_audience"


def test_expired_token_is_refused_after_the_leeway(keys: SigningKeySet) -> None:
    token, claims = issue(keys)
    verify(token, keys, now=claims["exp"] + 29)
    assert refusal(token, keys, now=claims["exp"] + 30) == "expired"
    assert refusal(token, keys, now=claims["exp"], leeway_seconds=0) == "expired"


def test_token_not_yet_valid_is_refused(keys: SigningKeySet) -> None:
    future = sign_with(keys, {**good_claims(), "nbf": int(T0) + 120})
    assert refusal(future, keys) == "not_yet_valid"
    token, _ = issue(keys, now=T0 + 120)  # issued by a clock far ahead of ours
    assert refusal(token, keys, now=T0) == "not_yet_valid"


def test_tampered_payload_is_refused(keys: SigningKeySet) -> None:
    token, claims = issue(keys)
    head, _, signature = token.split(".")
    forged = b64url(json.dumps({**claims, "scope": "admin"}).encode())
    assert refusal(f"{head}.{forged}.{signature}", keys) == "bad_signature"


def test_unknown_or_missing_kid_is_refused(keys: SigningKeySet) -> None:
    assert refusal(sign_with(keys, good_claims(), kid="nope"), keys) == "unknown_kid"
    token = jwt.encode(
        good_claims(),
        Ed25519PrivateKey.from_private_bytes(keys.current(T0).private_key),
        algorithm="EdDSA",
        headers={"typ": "at+jwt"},
    )
    assert refusal(token, keys) == "unknown_kid"


def test_revoked_jti_is_refused(keys: SigningKeySet) -> None:
    revoked = MemoryRevocationList()
    token, claims = issue(keys)
    other, _ = issue(keys)
    revoked.revoke(claims["jti"], claims["exp"])
    assert refusal(token, keys, revocations=revoked) == "revoked"
    verify(other, keys, revocations=revoked)
    assert revoked.prune(claims["exp"] - 1) == 0
    assert revoked.prune(claims["exp"] + 1) == 1


@pytest.mark.parametrize("missing", ["exp", "jti", "iss", "aud", "iat", "nbf", "sub"])
def test_missing_required_claim_is_refused(keys: SigningKeySet, missing: str) -> None:
    claims = good_claims()
    del claims[missing]
    assert refusal(sign_with(keys, claims), keys) in {"missing_claim", "wrong_audience"}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"exp": "9999999999"}, "malformed"),
        ({"exp": True}, "malformed"),
        ({"jti": 7}, "malformed"),
        ({"exp": int(T0) + 86_400}, "lifetime_too_long"),
    ],
)
def test_odd_claims_are_refused(keys: SigningKeySet, change: dict[str, Any], reason: str) -> None:
    assert refusal(sign_with(keys, {**good_claims(), **change}), keys) == reason


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ({"typ": "JWT"}, {"wrong_type"}),
        ({"typ": None}, {"wrong_type"}),
        # PyJWT itself refuses unknown critical headers while parsing.
        ({"crit": ["exp"]}, {"malformed", "unsupported_header"}),
        ({"crit": ["b64"], "b64": True}, {"malformed", "unsupported_header"}),
    ],
)
def test_odd_headers_are_refused(
    keys: SigningKeySet, header: dict[str, Any], reason: set[str]
) -> None:
    key = keys.current(T0)
    full = {"alg": "EdDSA", "kid": key.kid, "typ": "at+jwt", **header}
    head = b64url(json.dumps(full).encode())
    body = b64url(json.dumps(good_claims()).encode())
    private = Ed25519PrivateKey.from_private_bytes(key.private_key)
    signature = private.sign(f"{head}.{body}".encode())
    assert refusal(f"{head}.{body}.{b64url(signature)}", keys) in reason


@pytest.mark.parametrize(
    "token", ["", "abc", "a.b.c", "a.b", "....", "x" * 10_000, "eyJhbGciOiJFZERTQSJ9.e30."]
)
def test_malformed_tokens_are_refused(keys: SigningKeySet, token: str) -> None:
    assert refusal(token, keys) in {"malformed", "wrong_type"}


def test_refusal_is_vague_to_the_client(keys: SigningKeySet) -> None:
    token, _ = issue(keys, audience="billing-api")
    with pytest.raises(Unauthenticated) as info:
        verify(token, keys)
    problem = info.value.to_problem()
    assert problem["code"] == "unauthenticated"
    assert problem["status"] == 401
    assert "audience" not in json.dumps(problem)
    assert "reason" not in problem


# -- introspection -----------------------------------------------------------------------


def test_introspection_of_an_active_token(keys: SigningKeySet) -> None:
    token, claims = issue(keys)
    answer = introspect(token, keys, issuer=ISSUER, audience=AUDIENCE, now=T0)
    assert answer["active"] is True
    assert answer["token_type"] == "Bearer"
    for name in ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "nbf", "jti"):
        assert answer[name] == claims[name]


def test_introspection_of_anything_invalid_is_just_inactive(keys: SigningKeySet) -> None:
    token, claims = issue(keys)
    revoked = MemoryRevocationList()
    revoked.revoke(claims["jti"], claims["exp"])
    cases = [
        introspect("garbage", keys, issuer=ISSUER, audience=AUDIENCE, now=T0),
        introspect(token, keys, issuer=ISSUER, audience=AUDIENCE, now=T0 + 10_000),
        introspect(token, keys, issuer=ISSUER, audience="other", now=T0),
        introspect(token, keys, issuer=ISSUER, audience=AUDIENCE, now=T0, revocations=revoked),
    ]
    assert cases == [{"active": False}] * 4
