"""Partner report signatures (ECDSA P-256 over the raw body) and replay refusal."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Engine

from keysafe.audit.service import AuditLog
from keysafe.crypto.signatures import (
    PartnerKeys,
    SignatureInvalid,
    load_partner_keys,
    sign_for_tests,
)
from keysafe.errors import Conflict, InvalidInput, Unauthenticated
from keysafe.incident.partner import PartnerReports
from keysafe.store.engine import make_engine
from keysafe.store.migrate import upgrade

BODY = b'[{"token":"ks_live_x","type":"keysafe_api_key","url":"https://e/x","source":"content"}]'
NOW_US = 1_800_000_000 * 1_000_000


def _pem(key: ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture
def private() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def keys(private: ec.EllipticCurvePrivateKey) -> PartnerKeys:
    return PartnerKeys({"k1": private.public_key()})


def test_a_good_signature_verifies(keys: PartnerKeys, private: ec.EllipticCurvePrivateKey) -> None:
    keys.verify("k1", sign_for_tests(private, BODY), BODY)


@pytest.mark.parametrize(
    "case",
    ["other-key", "edited-body", "unknown-id", "not-base64", "empty", "truncated", "huge"],
)
def test_bad_signatures_are_refused_with_one_error(
    keys: PartnerKeys, private: ec.EllipticCurvePrivateKey, case: str
) -> None:
    good = sign_for_tests(private, BODY)
    ident, signature, body = "k1", good, BODY
    if case == "other-key":
        signature = sign_for_tests(ec.generate_private_key(ec.SECP256R1()), BODY)
    elif case == "edited-body":
        body = BODY.replace(b"content", b"commit")
    elif case == "unknown-id":
        ident = "k2"
    elif case == "not-base64":
        signature = "%%%"
    elif case == "empty":
        signature = ""
    elif case == "truncated":
        signature = base64.b64encode(base64.b64decode(good)[:-3]).decode()
    else:
        signature = "A" * 10_000
    with pytest.raises(SignatureInvalid, match=r"^signature does not verify$"):
        keys.verify(ident, signature, body)


def test_keys_load_from_githubs_shape_and_a_plain_mapping(
    tmp_path: Path, private: ec.EllipticCurvePrivateKey
) -> None:
    github = tmp_path / "github.json"
    github.write_text(
        json.dumps({"public_keys": [{"key_identifier": "abc", "key": _pem(private)}]})
    )
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps({"abc": _pem(private)}))
    for path in (github, plain):
        loaded = load_partner_keys(path)
        assert loaded.identifiers() == ["abc"]
        loaded.verify("abc", sign_for_tests(private, BODY), BODY)
    assert len(load_partner_keys(None)) == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not JSON"),
        ('{"public_keys": [1]}', "holds neither"),
        ('{"k": "not a pem"}', "not a PEM public key"),
    ],
)
def test_bad_key_files_name_the_problem(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "keys.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_partner_keys(path)


def test_only_p256_keys_load(tmp_path: Path) -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"k": _pem(p384)}))
    with pytest.raises(ValueError, match="not an ECDSA P-256"):
        load_partner_keys(path)


# -- replay ---------------------------------------------------------------------------


class FixedClock:
    def now_us(self) -> int:
        return NOW_US


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{tmp_path / 'ks.db'}")
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def reports(engine: Engine, keys: PartnerKeys) -> Iterator[PartnerReports]:
    audit = AuditLog(engine, key=lambda: b"k" * 32)
    audit.start()
    yield PartnerReports(engine, keys, audit, FixedClock(), max_age_seconds=600)
    audit.stop()


def test_a_replayed_report_is_refused_and_audited(
    reports: PartnerReports, private: ec.EllipticCurvePrivateKey, engine: Engine
) -> None:
    signature = sign_for_tests(private, BODY)
    matches = reports.accept(BODY, "k1", signature, "192.0.2.1", "r1")
    assert [m.token for m in matches] == ["ks_live_x"]
    with pytest.raises(Conflict, match="already processed"):
        reports.accept(BODY, "k1", signature, "192.0.2.1", "r2")
    with pytest.raises(Unauthenticated):
        reports.accept(BODY, "k2", signature, "192.0.2.1", "r3")
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT operation FROM audit_events ORDER BY seq")
        ops = [r[0] for r in rows]
    # A new writer first opens its audit chain (audit:chain-*), then come the refusals.
    assert [op for op in ops if not op.startswith("audit:chain")] == [
        "leak:replay",
        "leak:forged",
    ]


@pytest.mark.parametrize(
    ("timestamp", "accepted"),
    [
        (NOW_US / 1e6 - 60, True),
        (NOW_US / 1e6 - 601, False),
        (NOW_US / 1e6 + 3600, False),  # from the future
        ("2027-01-14T08:00:00Z", False),  # RFC 3339, a day before NOW_US
    ],
)
def test_timestamps_outside_the_window_are_refused(
    reports: PartnerReports,
    private: ec.EllipticCurvePrivateKey,
    timestamp: float | str,
    accepted: bool,
) -> None:
    body = json.dumps([{"token": "t", "type": "x", "url": "", "timestamp": timestamp}]).encode()
    signature = sign_for_tests(private, body)
    if accepted:
        assert reports.accept(body, "k1", signature, "s", "r")
    else:
        with pytest.raises(Conflict, match="window"):
            reports.accept(body, "k1", signature, "s", "r")


@pytest.mark.parametrize(
    "body",
    [b"{}", b"[]", b"not json", b'[{"type": "x"}]', b'[{"token": "t", "url": 5}]'],
)
def test_genuine_reports_of_the_wrong_shape_are_invalid(
    reports: PartnerReports, private: ec.EllipticCurvePrivateKey, body: bytes
) -> None:
    with pytest.raises(InvalidInput):
        reports.accept(body, "k1", sign_for_tests(private, body), "s", "r")
