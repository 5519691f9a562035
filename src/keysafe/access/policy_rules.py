"""Value types of policy documents: capabilities, conditions, rules, policies, requests.

Conditions restrict WHERE a rule applies. A rule whose conditions do not hold is as if it
were absent for that request: an allow that fails its conditions grants nothing, and a
deny that fails its conditions denies nothing (so ``deny`` with ``source_cidrs`` means
"deny from these networks", not "deny unless from these networks"). Every condition of
a rule must hold for it to apply.

- ``source_cidrs``: the source address lies in one of the networks (IPv4-mapped IPv6
  addresses count as IPv4); an unknown or unparsable source is in none.
- ``mfa_within_minutes = N``: the session's last MFA is at most N minutes before ``now``
  (inclusive; an MFA time slightly after ``now``, clock skew between nodes, is fresh).
  This is how step-up is written: an allow with ``mfa_within_minutes`` on ``*/prod/*``.
- ``hours = "HH:MM-HH:MM"``: start inclusive, end exclusive, ``24:00`` allowed as the end,
  over midnight when start > end (``22:00-06:00``).
- ``days = ["mon", ...]``: the calendar day of ``now``. Hours and days are read in
  ``timezone`` (an IANA name; UTC without it) at the request's instant, so under
  ``hours = "22:00-06:00"`` with ``days = ["fri"]`` Saturday 02:00 is a Saturday.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from dataclasses import KW_ONLY, dataclass, field
from zoneinfo import ZoneInfo

from keysafe.errors import InvalidInput

# Capability names are persisted in policy files and audit events: only ever add.
# They are independent: ``admin`` does not imply the others, ``write`` does not imply read.
CAPABILITIES: tuple[str, ...] = (
    "read",
    "list",
    "write",
    "delete",
    "destroy",
    "rotate",
    "manage-keys",
    "read-audit",
    "admin",
)
ALL_CAPABILITIES = frozenset(CAPABILITIES)

# Day names of the ``days`` condition, Monday first as ``datetime.weekday()`` counts.
DAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class HourRange:
    """A daily window ``start <= t < end`` in minutes after midnight; over midnight when
    ``start > end`` (``22:00-06:00``). ``end`` may be 1440 (``24:00``)."""

    start: int
    end: int

    def contains(self, minute: int) -> bool:
        if self.start < self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end

    def __str__(self) -> str:
        return f"{_hhmm(self.start)}-{_hhmm(self.end)}"


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True, slots=True)
class AccessRequest:
    """One question for the policy engine: may the caller use ``capability`` on ``path``?

    ``now`` and ``mfa_at`` must be timezone-aware. ``source`` is the caller's address
    (``ipaddress`` object or text); None or unparsable text fails every CIDR condition.
    """

    capability: str
    path: str
    _: KW_ONLY
    source: IPAddress | str | None = None
    now: dt.datetime
    mfa_at: dt.datetime | None = None

    def __post_init__(self) -> None:
        if self.now.utcoffset() is None:
            raise InvalidInput("AccessRequest.now must be timezone-aware")
        if self.mfa_at is not None and self.mfa_at.utcoffset() is None:
            raise InvalidInput("AccessRequest.mfa_at must be timezone-aware")


def source_address(source: IPAddress | str | None) -> IPAddress | None:
    """The request's source as an address (IPv4-mapped IPv6 unwrapped), None if unusable."""
    if source is None:
        return None
    if isinstance(source, str):
        try:
            source = ipaddress.ip_address(source.strip())
        except ValueError:
            return None
    if isinstance(source, ipaddress.IPv6Address) and source.ipv4_mapped is not None:
        return source.ipv4_mapped
    return source


# Kinds of condition failures, as explanations report them.
SOURCE, MFA, HOURS, DAYS_KIND = "source", "mfa", "hours", "days"


@dataclass(frozen=True, slots=True)
class Conditions:
    """Optional restrictions of a rule; the empty value restricts nothing."""

    source_cidrs: tuple[IPNetwork, ...] = ()
    mfa_within_minutes: int | None = None
    hours: HourRange | None = None
    days: frozenset[int] | None = None  # weekday numbers, 0 = Monday
    timezone: str | None = None  # IANA name for hours and days; UTC when None
    _zone: dt.tzinfo = field(default=dt.UTC, init=False, repr=False, compare=False)
    _window: dt.timedelta = field(default=dt.timedelta(0), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.timezone is not None:
            object.__setattr__(self, "_zone", ZoneInfo(self.timezone))
        if self.mfa_within_minutes is not None:
            object.__setattr__(self, "_window", dt.timedelta(minutes=self.mfa_within_minutes))

    def __bool__(self) -> bool:
        return bool(
            self.source_cidrs
            or self.mfa_within_minutes is not None
            or self.hours is not None
            or self.days is not None
        )

    def failures(self, request: AccessRequest, ip: IPAddress | None) -> list[tuple[str, str]]:
        """Every condition that does not hold for ``request``: (kind, human reason).

        ``ip`` is ``source_address(request.source)``, resolved once by the caller.
        """
        out: list[tuple[str, str]] = []
        if self.source_cidrs:
            if ip is None:
                out.append((SOURCE, f"source address {request.source!r} is unknown"))
            elif not any(ip in net for net in self.source_cidrs):
                nets = ", ".join(str(n) for n in self.source_cidrs)
                out.append((SOURCE, f"source {ip} is not in {nets}"))
        if self.hours is not None or self.days is not None:
            local = request.now.astimezone(self._zone)
            zone = self.timezone or "UTC"
            if self.hours is not None and not self.hours.contains(local.hour * 60 + local.minute):
                out.append((HOURS, f"{local:%H:%M} {zone} is outside {self.hours}"))
            if self.days is not None and local.weekday() not in self.days:
                out.append((DAYS_KIND, f"{DAYS[local.weekday()]} ({zone}) is not an allowed day"))
        if self.mfa_within_minutes is not None:
            limit = self.mfa_within_minutes
            if request.mfa_at is None:
                out.append((MFA, f"no MFA in this session (needs MFA within {limit} min)"))
            # A future mfa_at (clock skew between nodes) counts as fresh.
            elif request.now - request.mfa_at > self._window:
                out.append((MFA, f"MFA older than {limit} min"))
        return out

    def holds(self, request: AccessRequest, ip: IPAddress | None, *, mfa: bool = True) -> bool:
        """Whether every condition holds: :meth:`failures` is empty (the fast path).
        With ``mfa=False`` the MFA condition is left out (would step-up MFA grant?)."""
        if self.source_cidrs:
            if ip is None:
                return False
            for net in self.source_cidrs:
                if ip in net:
                    break
            else:
                return False
        if mfa and self.mfa_within_minutes is not None:
            mfa_at = request.mfa_at
            if mfa_at is None or request.now - mfa_at > self._window:
                return False
        if self.hours is not None or self.days is not None:
            local = request.now.astimezone(self._zone)
            if self.hours is not None and not self.hours.contains(local.hour * 60 + local.minute):
                return False
            if self.days is not None and local.weekday() not in self.days:
                return False
        return True

    def describe(self) -> str:
        """The conditions in words, e.g. ``source in 10.0.0.0/8; MFA within 15 min``."""
        parts: list[str] = []
        if self.source_cidrs:
            parts.append("source in " + ", ".join(str(n) for n in self.source_cidrs))
        if self.mfa_within_minutes is not None:
            parts.append(f"MFA within {self.mfa_within_minutes} min")
        zone = f" {self.timezone}" if self.timezone else " UTC"
        if self.hours is not None:
            parts.append(f"hours {self.hours}{zone}")
        if self.days is not None:
            parts.append("days " + ",".join(DAYS[d] for d in sorted(self.days)) + zone)
        return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class Rule:
    """One ``[[rule]]`` of a policy. ``index`` counts rules from 1 in file order and
    ``line`` is the line of its ``[[rule]]`` header (both only for messages)."""

    index: int
    line: int
    path: str
    capabilities: frozenset[str]
    deny: bool = False
    conditions: Conditions = Conditions()
    description: str = ""

    def summary(self) -> str:
        """``allow read, list on payments/prod/*`` or ``deny payments/prod/ROOT_*``."""
        verb = "deny" if self.deny else "allow"
        caps = ""
        if not (self.deny and self.capabilities == ALL_CAPABILITIES):
            caps = ", ".join(c for c in CAPABILITIES if c in self.capabilities) + " on "
        text = f"{verb} {caps}{self.path}"
        if self.conditions:
            text += f" if {self.conditions.describe()}"
        return text


@dataclass(frozen=True, slots=True)
class Policy:
    """A named policy document: its rules in file order and the text it was parsed from."""

    name: str
    rules: tuple[Rule, ...]
    source: str = field(default="", repr=False)

    def to_toml(self) -> str:
        """The rules as TOML that :func:`parse_policy` reads back to the same rules
        (comments and layout of the original are not kept: see ``source``)."""
        blocks: list[str] = []
        for rule in self.rules:
            lines = ["[[rule]]", f"path = {_s(rule.path)}"]
            if rule.deny:
                lines.append("deny = true")
            if not (rule.deny and rule.capabilities == ALL_CAPABILITIES):
                caps = [c for c in CAPABILITIES if c in rule.capabilities]
                lines.append(f"capabilities = [{', '.join(_s(c) for c in caps)}]")
            cond = rule.conditions
            if cond.source_cidrs:
                lines.append(f"source_cidrs = [{', '.join(_s(str(n)) for n in cond.source_cidrs)}]")
            if cond.mfa_within_minutes is not None:
                lines.append(f"mfa_within_minutes = {cond.mfa_within_minutes}")
            if cond.hours is not None:
                lines.append(f"hours = {_s(str(cond.hours))}")
            if cond.days is not None:
                lines.append(f"days = [{', '.join(_s(DAYS[d]) for d in sorted(cond.days))}]")
            if cond.timezone is not None:
                lines.append(f"timezone = {_s(cond.timezone)}")
            if rule.description:
                lines.append(f"description = {_s(rule.description)}")
            blocks.append("\n".join(lines) + "\n")
        return "\n".join(blocks)


def _s(text: str) -> str:
    # A JSON string is a valid TOML basic string (same escapes, \\uXXXX included).
    return json.dumps(text, ensure_ascii=False)
