"""Known-secret matching with one-time-keyed digests."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

import pytest

from keysafe.scan.known import RULE_ID, KnownDigests

STORED = {
    "db/PASSWORD": "Zq8!pL2#rT9w",
    "svc/TOKEN": "plainlookingvalue42",
    "short/FLAG": "true",
    "i18n/PASSPHRASE": "pässwörd-Größe9",
}


def _reply(values: dict[str, str]) -> dict[str, object]:
    key = os.urandom(32)
    return {
        "algorithm": "hmac-sha256",
        "key": base64.b64encode(key).decode(),
        "secrets": [
            {
                "path": path,
                "version": 1,
                "length": len(value.encode()),
                "digest": hmac.new(key, value.encode(), hashlib.sha256).hexdigest(),
            }
            for path, value in values.items()
        ],
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("password=Zq8!pL2#rT9w", ["db/PASSWORD"]),
        ("DATABASE_URL=postgres://app:Zq8!pL2#rT9w@db:5432/app", ["db/PASSWORD"]),
        ('log: auth ok token="plainlookingvalue42" user=bob', ["svc/TOKEN"]),
        ("plainlookingvalue42 and again plainlookingvalue42", ["svc/TOKEN", "svc/TOKEN"]),
        ("feature flag true everywhere", []),  # short values are never matched
        ("Zq8!pL2#rT9", []),  # one character short
        ("nothing to see", []),
        ("DB_PASS=pässwörd-Größe9 # non-ASCII: bytes differ from characters", ["i18n/PASSPHRASE"]),
    ],
)
def test_finds_stored_values(text: str, expected: list[str]) -> None:
    known = KnownDigests.from_reply(_reply(STORED))
    hits = known.find(text)
    assert [k.path for _, k in hits] == expected
    for match, _ in hits:
        assert match.rule_id == RULE_ID
        assert text[match.start : match.end] == match.secret


def test_reply_validation() -> None:
    with pytest.raises(ValueError, match="algorithm"):
        KnownDigests.from_reply({"algorithm": "md5", "key": "", "secrets": []})
    assert len(KnownDigests.from_reply(_reply(STORED))) == 3
