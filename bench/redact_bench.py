"""Benchmark: what keysafe.redact adds to each log record.

One command: ``python bench/redact_bench.py`` (``--records N``, default 20,000;
``--values N`` remembered values, default 100, a few with spaces). In one run it logs
the same records through a ``logging`` handler writing to memory, without a filter (the
reference) and with ``RedactingFilter`` (known values and the scanner's rules), and
through structlog with and without ``RedactProcessor``. It reports microseconds per
record and the ratio to the reference. Results: a table on stdout,
bench/results/redact.md and .json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import logging
import platform
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from keysafe.redact import RedactingFilter, Redactor, RedactProcessor, Registry

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

MESSAGES = {
    "plain": ("request %s served in %d ms", ("GET /api/orders/42", 12)),
    "known value": ("login as app with password %s", ("<value>",)),
    "rule hit": ("using key %s for upload", ("AKIAIOSFODNN7EXAMPLQ",)),
    "long line": ("payload %s", (json.dumps({f"field{i}": f"v{i}" * 4 for i in range(40)}),)),
}


def registry(count: int) -> tuple[Registry, str]:
    reg = Registry()
    value = ""
    for i in range(count):
        value = secrets.token_urlsafe(18) if i % 10 else f"pass phrase {secrets.token_hex(4)}"
        reg.remember(f"bench/app/SECRET_{i}", value)
    plain = secrets.token_urlsafe(18)
    reg.remember("bench/app/DB_PASSWORD", plain)
    return reg, plain


def time_logging(
    records: int, filt: logging.Filter | None, args: tuple[Any, ...], fmt: str
) -> float:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    if filt is not None:
        handler.addFilter(filt)
    log = logging.getLogger(f"bench-{id(handler)}")
    log.addHandler(handler)
    log.propagate = False
    start = time.perf_counter()
    for _ in range(records):
        log.warning(fmt, *args)
    elapsed = time.perf_counter() - start
    log.removeHandler(handler)
    return elapsed / records * 1e6


def time_structlog(records: int, processor: RedactProcessor | None, text: str) -> float:
    import structlog

    out = io.StringIO()
    chain: list[Any] = [processor] if processor is not None else []
    structlog.configure(
        processors=[*chain, structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=True,
    )
    log = structlog.get_logger()
    start = time.perf_counter()
    for _ in range(records):
        log.info("event", detail=text, n=1)
    elapsed = time.perf_counter() - start
    structlog.reset_defaults()
    return elapsed / records * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--values", type=int, default=100)
    args = parser.parse_args()
    reg, known = registry(args.values)
    redactor = Redactor(reg)
    rows = []
    for name, (fmt, margs) in MESSAGES.items():
        margs = tuple(known if a == "<value>" else a for a in margs)
        base = time_logging(args.records, None, margs, fmt)
        red = time_logging(args.records, RedactingFilter(redactor), margs, fmt)
        rows.append(("logging", name, base, red))
    text = f"connecting with {known} and AKIAIOSFODNN7EXAMPLQ"
    try:
        base = time_structlog(args.records, None, text)
        red = time_structlog(args.records, RedactProcessor(redactor), text)
        rows.append(("structlog", "known value + rule hit", base, red))
    except ImportError:
        pass
    lines = [
        f"keysafe.redact cost per log record ({args.records} records, {len(reg)} remembered "
        "values; reference: the same logging without redaction, same run)",
        "",
        "| library | record | plain us | redacted us | added us | ratio |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for lib, name, base, red in rows:
        lines.append(
            f"| {lib} | {name} | {base:.1f} | {red:.1f} | {red - base:+.1f} | {red / base:.2f}x |"
        )
    table = "\n".join(lines)
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "redact.md").write_text(table + "\n", encoding="utf-8")
    doc = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "records": args.records,
        "values": len(reg),
        "rows": [
            {"library": lib, "record": n, "plain_us": b, "redacted_us": r} for lib, n, b, r in rows
        ],
    }
    (RESULTS / "redact.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
