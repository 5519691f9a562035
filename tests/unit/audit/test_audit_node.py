"""The node an audit event names: hashed into new events, absent from old ones, whose
hashes stay what they were written with."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os

import orjson

from keysafe.audit.file_verify import parse_event_line as parse_line
from keysafe.audit.models import AuditEvent, chain, link
from keysafe.audit.verify import ChainChecker

KEY = os.urandom(32)
OLD = AuditEvent(1, "r1", "tok_x", "127.0.0.1", "secret:read", "a/b", "ok", "d")
NEW = dataclasses.replace(OLD, request_id="r2", node="host-1a2b3c4d")

# The bytes an event hashed before nodes were recorded (the 0014 format), spelled out.
OLD_CANONICAL = orjson.dumps(
    {
        "actor": "tok_x",
        "detail": "d",
        "operation": "secret:read",
        "outcome": "ok",
        "path": "a/b",
        "request_id": "r1",
        "source": "127.0.0.1",
        "ts": 1,
    }
)


def test_an_event_without_a_node_hashes_as_before() -> None:
    assert OLD.canonical() == OLD_CANONICAL
    mac = hmac.new(KEY, digestmod=hashlib.sha256)
    mac.update((1).to_bytes(8, "big") + b"\x00" * 32 + OLD_CANONICAL)
    assert link(KEY, 1, b"\x00" * 32, OLD) == mac.digest()


def test_the_node_is_hashed_when_set() -> None:
    assert orjson.loads(NEW.canonical())["node"] == "host-1a2b3c4d"
    base = dataclasses.replace(NEW, node="")
    assert link(KEY, 2, b"p" * 32, NEW) != link(KEY, 2, b"p" * 32, base)


def _walk(events: list[AuditEvent], edit: dict[int, str] | None = None) -> object:
    checker = ChainChecker(KEY, anchored=False)
    for c in chain(KEY, 0, b"\x00" * 32, events):
        event = c.event
        if edit and c.seq in edit:
            event = dataclasses.replace(event, node=edit[c.seq])
        bad = checker.feed(c.seq, event, c.prev_hash, c.hash)
        if bad is not None:
            return bad
    return None


def test_a_chain_of_old_and_new_events_verifies_and_a_changed_node_shows() -> None:
    events = [OLD, NEW, OLD, NEW]
    assert _walk(events) is None
    for seq, node in ((2, "other-node"), (2, ""), (1, "host-1a2b3c4d")):
        bad = _walk(events, {seq: node})
        assert bad is not None
        assert bad.first_bad == seq  # type: ignore[attr-defined]
        assert "altered" in bad.reason  # type: ignore[attr-defined]


def test_file_lines_with_and_without_a_node_parse() -> None:
    old, new = chain(KEY, 0, b"\x00" * 32, [OLD, NEW])
    old_line = old.as_json()
    del old_line["node"]  # as written before nodes were recorded
    parsed = parse_line(orjson.dumps(old_line))
    assert isinstance(parsed, tuple)
    assert parsed[1] == OLD
    parsed = parse_line(orjson.dumps(new.as_json()))
    assert isinstance(parsed, tuple)
    assert parsed[1].node == "host-1a2b3c4d"
