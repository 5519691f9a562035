"""Durations: timedelta, seconds and "90d" are the same request everywhere."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest

from keysafe.access.apikeys import parse_duration as server_parse
from keysafe.client import Client
from keysafe.client._durations import as_text, seconds
from keysafe.errors import InvalidInput


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (timedelta(days=90), 7_776_000),
        (7_776_000, 7_776_000),
        ("90d", 7_776_000),
        ("1h30m", 5400),
        (" 2w ", 1_209_600),
        ("45", 45),
        (1.9, 1),
    ],
)
def test_every_form_gives_the_same_seconds(
    value: timedelta | int | float | str, expected: int
) -> None:
    assert seconds(value) == expected


@pytest.mark.parametrize("value", ["", "90 days", "1.5h", "-5", "d90", True, -1, 0, timedelta(0)])
def test_bad_durations_are_invalid_input(value: object) -> None:
    with pytest.raises(InvalidInput):
        seconds(value)  # type: ignore[arg-type]


def test_zero_only_where_allowed() -> None:
    assert seconds(0, allow_zero=True) == 0


def test_text_form_is_what_the_server_reads() -> None:
    assert server_parse(as_text("90d")) == 7_776_000
    assert server_parse(as_text(timedelta(hours=24))) == 86_400


def test_methods_send_the_same_body_for_each_form(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEYSAFE_ADDR", raising=False)
    bodies: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json={"id": "k", "version": 1})

    with Client("https://vault.test", "tok", transport=httpx.MockTransport(handler)) as ks:
        for form in (timedelta(days=90), 7_776_000, "90d"):
            ks.create_key("svc", expires_in=form)
            ks.roll_key("k", grace=form)
            ks.set_rotation_policy("a/b", "random", every_seconds=form, grace_seconds="1h")
    keys = [b["expires_in"] for b in bodies if "service" in b]
    graces = [b["grace"] for b in bodies if "grace" in b]
    every = [(b["every_seconds"], b["grace_seconds"]) for b in bodies if "rotator" in b]
    assert keys == ["7776000s"] * 3
    assert graces == ["7776000s"] * 3
    assert every == [(7_776_000, 3600)] * 3


def test_a_key_rolls_with_no_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    # `keysafe key roll ID --grace 0s`: the old key dies at once (after a leak).
    monkeypatch.delenv("KEYSAFE_ADDR", raising=False)
    bodies: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json={"id": "k", "version": 1})

    with Client("https://vault.test", "tok", transport=httpx.MockTransport(handler)) as ks:
        for form in (0, "0s", timedelta(0)):
            ks.roll_key("k", grace=form)
    assert [b["grace"] for b in bodies] == ["0s"] * 3
