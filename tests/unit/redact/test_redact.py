"""keysafe.redact: known values and scanner-rule hits replaced in log output."""

from __future__ import annotations

import io
import json
import logging

import httpx
import pytest
import structlog

from keysafe.client import Client
from keysafe.redact import RedactingFilter, Redactor, RedactProcessor, Registry
from keysafe.redact.registry import ENV_VAR, process_registry

PASSWORD = "hunter2-but-long"
AWS_KEY = "AKIAIOSFODNN7EXAMPLQ"


@pytest.fixture
def redactor() -> Redactor:
    registry = Registry()
    registry.remember("payments/dev/DB_PASSWORD", PASSWORD)
    registry.remember("payments/dev/PHRASE", "correct horse: battery")
    registry.remember("payments/dev/PIN", "123")  # too short to track
    return Redactor(registry)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"password={PASSWORD}", "password=[REDACTED:payments/dev/DB_PASSWORD]"),
        (f'{{"pw": "{PASSWORD}"}}', '{"pw": "[REDACTED:payments/dev/DB_PASSWORD]"}'),
        (
            f"postgres://app:{PASSWORD}@db:5432/x",
            "postgres://app:[REDACTED:payments/dev/DB_PASSWORD]@db:5432/x",
        ),
        ("said correct horse: battery twice", "said [REDACTED:payments/dev/PHRASE] twice"),
        (f"key {AWS_KEY} found", "key [REDACTED:aws-access-key-id] found"),
        ("pin 123 and nothing else", "pin 123 and nothing else"),
        (f"{PASSWORD}x is another word", f"{PASSWORD}x is another word"),
        ("", ""),
    ],
)
def test_redacts_known_values_and_rule_hits(redactor: Redactor, text: str, expected: str) -> None:
    assert redactor.redact(text) == expected


def test_known_values_only_without_rules() -> None:
    registry = Registry()
    registry.remember("a/B", PASSWORD)
    plain = Redactor(registry, rules=False)
    assert plain.redact(f"{PASSWORD} {AWS_KEY}") == f"[REDACTED:a/B] {AWS_KEY}"


def test_the_env_var_carries_digests_never_values() -> None:
    registry = Registry()
    registry.remember("payments/dev/DB_PASSWORD", PASSWORD)
    registry.remember("payments/dev/PHRASE", "correct horse: battery")
    text = registry.export()
    assert PASSWORD not in text
    assert "horse" not in text
    child = Registry.from_env(text)
    assert child is not None
    assert len(child) == 2
    found = Redactor(child, rules=False).redact(f"x {PASSWORD} correct horse: battery")
    assert found == "x [REDACTED:payments/dev/DB_PASSWORD] [REDACTED:payments/dev/PHRASE]"


@pytest.mark.parametrize("text", ["", "garbage", "ksr1:zz", "ksr0:00;4:0:ab:p"])
def test_a_malformed_env_var_is_ignored(text: str) -> None:
    registry = Registry.from_env(text)
    assert registry is None or len(registry) == 0


def test_malformed_rows_are_skipped() -> None:
    good = Registry()
    good.remember("a/B", PASSWORD)
    text = good.export() + ";x:0:zz:p;16:0:nothex:q"
    child = Registry.from_env(text)
    assert child is not None
    assert len(child) == 1


def test_logging_filter_rewrites_message_args_and_traceback(redactor: Redactor) -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RedactingFilter(redactor))
    log = logging.getLogger("keysafe-test-redact")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("login with %s failed", PASSWORD)
        try:
            raise RuntimeError(f"bad credential {PASSWORD}")
        except RuntimeError:
            log.exception("oops %d", 1)
    finally:
        log.removeHandler(handler)
    text = out.getvalue()
    assert PASSWORD not in text
    assert "login with [REDACTED:payments/dev/DB_PASSWORD] failed" in text
    assert "RuntimeError: bad credential [REDACTED:payments/dev/DB_PASSWORD]" in text


def test_structlog_processor_redacts_nested_values(redactor: Redactor) -> None:
    out = io.StringIO()
    structlog.configure(
        processors=[RedactProcessor(redactor), structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    try:
        structlog.get_logger().info(
            "connecting", dsn=f"postgres://u:{PASSWORD}@h/db", extra={"keys": [AWS_KEY]}, n=3
        )
    finally:
        structlog.reset_defaults()
    doc = json.loads(out.getvalue())
    assert doc["dsn"] == "postgres://u:[REDACTED:payments/dev/DB_PASSWORD]@h/db"
    assert doc["extra"] == {"keys": ["[REDACTED:aws-access-key-id]"]}
    assert doc["n"] == 3


def test_the_sdk_registers_what_it_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    value = "sdk-read-value-xyz"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json={"path": "svc/dev/TOKEN", "version": 1, "value": value, "metadata": {}}
        )

    with Client("https://vault.test", "tok", transport=httpx.MockTransport(handler)) as ks:
        assert ks.get("svc/dev/TOKEN") == value
    known = process_registry().lookup(value)
    assert known is not None
    assert known.path == "svc/dev/TOKEN"
    assert Redactor(rules=False).redact(f"token {value}") == "token [REDACTED:svc/dev/TOKEN]"


def test_the_registry_and_its_export_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from keysafe.redact import registry as module

    monkeypatch.setattr(module, "MAX_ENTRIES", 50)
    monkeypatch.setattr(module, "MAX_EXPORT", 2000)
    reg = Registry()
    for i in range(120):
        reg.remember(f"svc/SECRET_{i}", f"value-number-{i:04d}")
    assert len(reg) == 50
    assert reg.lookup("value-number-0119") is not None  # the newest stay
    assert reg.lookup("value-number-0000") is None
    text = reg.export()
    assert len(text) <= 2000
    child = Registry.from_env(text)
    assert child is not None
    assert child.lookup("value-number-0119") is not None
