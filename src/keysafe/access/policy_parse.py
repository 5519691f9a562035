"""Reading policy files (TOML) into :class:`~keysafe.access.policy_rules.Policy` values.

Every error is an :class:`~keysafe.errors.InvalidInput` whose message names the policy and
the line (and the column when known); the same numbers are in its ``extra`` as ``line`` and
``column`` for the problem document. Unknown fields are errors too: a typo such as
``denny = true`` must not silently turn a deny into something else.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
import zoneinfo
from collections.abc import Callable
from typing import Any, NoReturn

from keysafe.access.policy_glob import GlobError, check_glob
from keysafe.access.policy_rules import (
    ALL_CAPABILITIES,
    CAPABILITIES,
    DAYS,
    Conditions,
    HourRange,
    IPNetwork,
    Policy,
    Rule,
)
from keysafe.errors import InvalidInput

__all__ = ["parse_policy"]

RULE_FIELDS = frozenset(
    {
        "path",
        "capabilities",
        "deny",
        "source_cidrs",
        "mfa_within_minutes",
        "hours",
        "days",
        "timezone",
        "description",
    }
)
_Fail = Callable[..., NoReturn]
TOP_FIELDS = frozenset({"rule", "description"})

# A ``[[rule]]`` header line (whitespace and a quoted key are legal TOML).
_HEADER = re.compile(r"""^[ \t]*\[\[[ \t]*(?:rule|"rule"|'rule')[ \t]*\]\]""")
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_HHMM = re.compile(r"(\d\d):(\d\d)")


class _Text:
    """The policy text with the positions that messages need."""

    def __init__(self, name: str, text: str) -> None:
        self.name = name
        self.lines = text.splitlines()
        self.headers = [i + 1 for i, line in enumerate(self.lines) if _HEADER.match(line)]

    def fail(self, message: str, line: int | None, column: int | None = None) -> NoReturn:
        where = "" if line is None else f", line {line}" + (f", column {column}" if column else "")
        raise InvalidInput(f"policy {self.name!r}{where}: {message}", line=line, column=column)

    def field_position(
        self, rule_line: int, key: str, needle: str | None
    ) -> tuple[int, int | None]:
        """Line (and column of ``needle``) of ``key = ...`` inside the rule at ``rule_line``."""
        end = next((h for h in self.headers if h > rule_line), len(self.lines) + 1)
        pattern = re.compile(rf"""^[ \t]*(?:{re.escape(key)}|"{re.escape(key)}")[ \t]*=""")
        start = None
        for number in range(rule_line + 1, end):
            text = self.lines[number - 1]
            if start is None:
                if not pattern.match(text):
                    continue
                start = number
                if needle is None:
                    return start, None
            column = text.find(needle) if needle is not None else -1
            if column >= 0:
                return number, column + 1
        return (start or rule_line), None


def parse_policy(name: str, text: str) -> Policy:
    """Parse the policy document ``text`` (TOML, ``[[rule]]`` tables) named ``name``.

    Raises :class:`InvalidInput` naming the line for TOML syntax errors, unknown fields,
    unknown capabilities, empty or malformed path globs, bad CIDRs, hours, days, timezones.
    """
    if not name.strip():
        raise InvalidInput("a policy needs a name")
    src = _Text(name, text)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _TOML_POSITION.search(message)
        if match is None:
            # "(at end of document)": an unclosed array, table or string.
            end = message.rfind(" (at end of document)")
            last = max(1, len(src.lines)) if end >= 0 else None
            src.fail(f"TOML syntax error: {message[:end] if end >= 0 else message}", last)
        line, column = int(match.group(1)), int(match.group(2))
        src.fail(f"TOML syntax error: {message[: match.start()]}", line, column)
    for key in doc:
        if key not in TOP_FIELDS:
            src.fail(f"unknown top-level field {key!r} (expected [[rule]] tables)", None)
    raw_rules = doc.get("rule", [])
    if not isinstance(raw_rules, list) or not all(isinstance(r, dict) for r in raw_rules):
        src.fail("'rule' must be written as [[rule]] tables", None)
    if len(raw_rules) != len(src.headers):
        # Inline ``rule = [{...}]`` arrays, or a "[[rule]]" line inside a multi-line string:
        # rules could not be told apart by line, so messages would point at the wrong place.
        src.fail("write each rule as its own [[rule]] table, one header per rule", None)
    rules = tuple(
        _rule(src, index, line, raw)
        for index, (line, raw) in enumerate(zip(src.headers, raw_rules, strict=True), start=1)
    )
    return Policy(name=name, rules=rules, source=text)


def _rule(src: _Text, index: int, line: int, raw: dict[str, Any]) -> Rule:
    def fail(key: str | None, message: str, needle: str | None = None) -> NoReturn:
        at_line, column = (line, None) if key is None else src.field_position(line, key, needle)
        src.fail(f"rule {index}: {message}", at_line, column)

    for key in raw:
        if key not in RULE_FIELDS:
            fail(key, f"unknown field {key!r} (known: {', '.join(sorted(RULE_FIELDS))})")

    path = raw.get("path")
    if path is None:
        fail(None, "missing 'path'")
    if not isinstance(path, str):
        fail("path", "'path' must be a string")
    try:
        check_glob(path)
    except GlobError as exc:
        fail("path", f"bad path glob {path!r}: {exc}")

    deny = raw.get("deny", False)
    if not isinstance(deny, bool):
        fail("deny", "'deny' must be true or false")

    if "capabilities" in raw:
        caps = _strings(raw["capabilities"], lambda m: fail("capabilities", m), "capabilities")
        if not caps:
            fail("capabilities", "'capabilities' is empty")
        for cap in caps:
            if cap not in ALL_CAPABILITIES:
                fail(
                    "capabilities",
                    f"unknown capability {cap!r} (known: {', '.join(CAPABILITIES)})",
                    f'"{cap}"',
                )
        capabilities = frozenset(caps)
    elif deny:
        capabilities = ALL_CAPABILITIES  # a deny without capabilities denies everything
    else:
        fail(None, "an allow rule needs 'capabilities' (a deny may omit them to deny all)")

    description = raw.get("description", "")
    if not isinstance(description, str):
        fail("description", "'description' must be a string")
    conditions = _conditions(raw, fail)
    return Rule(index, line, path, capabilities, deny, conditions, description)


def _conditions(raw: dict[str, Any], fail: _Fail) -> Conditions:
    networks: list[IPNetwork] = []
    if "source_cidrs" in raw:
        cidrs = _strings(raw["source_cidrs"], lambda m: fail("source_cidrs", m), "source_cidrs")
        if not cidrs:
            fail("source_cidrs", "'source_cidrs' is empty (it would match no source)")
        for cidr in cidrs:
            try:
                networks.append(ipaddress.ip_network(cidr.strip(), strict=True))
            except ValueError as exc:
                fail("source_cidrs", f"invalid CIDR {cidr!r}: {exc}", f'"{cidr}"')

    mfa = raw.get("mfa_within_minutes")
    if mfa is not None and (isinstance(mfa, bool) or not isinstance(mfa, int) or mfa <= 0):
        fail("mfa_within_minutes", "'mfa_within_minutes' must be a positive whole number")

    hours = None
    if "hours" in raw:
        value = raw["hours"]
        hours = _hours(value) if isinstance(value, str) else None
        if hours is None:
            fail("hours", f"bad hours {value!r}: expected 'HH:MM-HH:MM' such as '08:00-18:00'")

    days = None
    if "days" in raw:
        names = _strings(raw["days"], lambda m: fail("days", m), "days")
        if not names:
            fail("days", "'days' is empty (it would match no day)")
        for day in names:
            if day.lower() not in DAYS:
                fail("days", f"unknown day {day!r} (known: {', '.join(DAYS)})", f'"{day}"')
        days = frozenset(DAYS.index(d.lower()) for d in names)

    timezone = raw.get("timezone")
    if timezone is not None:
        if hours is None and days is None:
            fail("timezone", "'timezone' only applies to 'hours' and 'days'")
        try:
            if not isinstance(timezone, str):
                raise ValueError(timezone)
            zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            fail("timezone", f"unknown timezone {timezone!r} (an IANA name such as 'Europe/Paris')")
    return Conditions(tuple(networks), mfa, hours, days, timezone)


def _hours(text: str) -> HourRange | None:
    start_text, sep, end_text = text.strip().partition("-")
    start, end = _minute(start_text.strip()), _minute(end_text.strip())
    if not sep or start is None or end is None or start == 1440 or start == end:
        return None
    return HourRange(start, end)


def _minute(text: str) -> int | None:
    match = _HHMM.fullmatch(text)
    if match is None:
        return None
    hour, minute = int(match.group(1)), int(match.group(2))
    if minute > 59 or hour > 24 or (hour == 24 and minute != 0):
        return None
    return hour * 60 + minute


def _strings(value: Any, fail: _Fail, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        fail(f"{key!r} must be a list of strings")
    return list(value)
