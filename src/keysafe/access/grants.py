"""Nobody hands out more than they hold: does a caller hold everything a set of policy
documents grants?

A caller *holds* an allow rule R (capability c on glob g, conditions C) of the granted
documents when, for every path p that g matches and every request on which C holds, the
caller's own policies would allow c on p. This module proves that conservatively (a
"no" may be over-cautious, a "yes" is always right) with two set questions on globs,
answered exactly by :mod:`keysafe.access.glob_automata`:

1. Covered: every path of g, except those a deny of the granted documents takes back
   whenever R applies (a deny in a set wins over any allow), is matched by one of the
   caller's allows for c whose conditions C implies (the caller's rule applies whenever
   R does: CIDRs inside the caller's, MFA at least as recent, hours and days inside the
   caller's window in the same timezone).
2. Not denied: no deny rule of the caller for c (whatever its conditions, since they
   might hold) matches a path of g, except paths that a deny of the granted documents
   takes back whenever the caller's deny applies (same or looser conditions).

Deny rules of the granted documents only narrow, so they are never checked themselves.
When the automata or the whole decision grow past their budget the answer is "not
held" (fail closed). Rules are first paired only with rules that may share a path
(same literal first segment, agreeing literal prefix and suffix), so large policy sets
stay cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from keysafe.access.glob_automata import (
    Budget,
    GlobAutomaton,
    TooComplex,
    ends_meet,
    find_path,
    glob_automaton,
    literal_ends,
)
from keysafe.access.models import Allow, Decision, Deny, Principal
from keysafe.access.policy_glob import literal_head
from keysafe.access.policy_rules import CAPABILITIES, Conditions, HourRange, Policy, Rule

__all__ = ["WORK_BUDGET", "check_grant", "holder_of", "implies"]

# About a second of work at most (a caller with 350 rules granting them all back uses
# less than half of it); beyond it, refuse rather than hold a write transaction longer.
WORK_BUDGET = 450_000


def holder_of(principal: Principal) -> tuple[str, ...] | None:
    """What ``principal`` may hand out, as the grant checks take it: None for the root
    token (exempt), else its policy names (none for a token of the vault core's modes,
    which therefore hands out nothing)."""
    return None if principal.is_root else tuple(principal.policies)


@dataclass(frozen=True, slots=True)
class _Named:
    policy: str
    rule: Rule
    ends: tuple[str, str]  # the glob's literal prefix and suffix, for a quick pre-test

    @classmethod
    def of(cls, policy: str, rule: Rule) -> _Named:
        return cls(policy, rule, literal_ends(rule.path))

    @property
    def where(self) -> str:
        return f"policy {self.policy}, rule {self.rule.index}"


class _Rules:
    """The rules of one side, by kind, capability and literal first segment (two globs
    whose first segments are different literals share no path)."""

    def __init__(self, policies: Iterable[Policy]) -> None:
        self.all = [_Named.of(p.name, r) for p in policies for r in p.rules]
        self._index: dict[tuple[bool, str], dict[str | None, list[_Named]]] = {}
        for named in self.all:
            for cap in named.rule.capabilities:
                heads = self._index.setdefault((named.rule.deny, cap), {})
                heads.setdefault(literal_head(named.rule.path), []).append(named)

    def near(self, deny: bool, cap: str, glob: str) -> list[_Named]:
        """The rules of this kind and capability that may share a path with ``glob``."""
        heads = self._index.get((deny, cap), {})
        head = literal_head(glob)
        if head is None:
            return [n for group in heads.values() for n in group]
        return heads.get(head, []) + heads.get(None, [])

    def conditional(self, cap: str) -> bool:
        heads = self._index.get((False, cap), {})
        return any(bool(n.rule.conditions) for group in heads.values() for n in group)


def check_grant(
    held: Iterable[Policy], granted: Iterable[Policy], *, budget: int = WORK_BUDGET
) -> Decision:
    """Allow when the holder of ``held`` holds every capability ``granted`` grants, on
    every path it grants it; else Deny naming the first allow rule (in document order)
    and capability not held, with an example path. Never raises. Past ``budget`` units
    of work (rule pairs compared, automaton states explored) the answer is Deny: the
    check runs inside a write transaction and must stay short."""
    mine, given = _Rules(held), _Rules(granted)
    work = Budget(budget)
    automata: dict[str, GlobAutomaton] = {}

    def auto(glob: str) -> GlobAutomaton:
        if glob not in automata:
            automata[glob] = glob_automaton(glob)
        return automata[glob]

    for grant in given.all:
        rule = grant.rule
        if rule.deny:
            continue
        for cap in CAPABILITIES:
            if cap not in rule.capabilities:
                continue
            try:
                reason = _shortfall(grant, cap, mine, given, auto, work)
            except TooComplex:
                reason = "the policies are too large or complex to prove it is held"
            if reason is not None:
                return Deny(
                    f"you do not hold {cap} on {rule.path!r} ({grant.where}): {reason}",
                    rule=f"{grant.where}: {rule.summary()}",
                )
    return Allow("every capability granted is held")


def _shortfall(
    grant: _Named,
    cap: str,
    mine: _Rules,
    given: _Rules,
    auto: Callable[[str], GlobAutomaton],
    work: Budget,
) -> str | None:
    rule = grant.rule
    cond = rule.conditions
    target = auto(rule.path)
    given_denies = given.near(True, cap, rule.path)
    my_allows = mine.near(False, cap, rule.path)
    my_denies = mine.near(True, cap, rule.path)
    work.spend(len(given_denies) + len(my_allows) + len(my_denies))
    # Rules whose globs cannot share a path with the granted one do not matter.
    meet = [n for n in given_denies if ends_meet(grant.ends, n.ends)]
    # Denies of the granted documents that apply whenever the granted rule does.
    narrowing = [auto(n.rule.path) for n in meet if implies(cond, n.rule.conditions)]
    covering = [
        auto(n.rule.path)
        for n in my_allows
        if ends_meet(grant.ends, n.ends) and implies(cond, n.rule.conditions)
    ]
    example = find_path([target], narrowing + covering, budget=work)
    if example is not None:
        return f"e.g. {example!r} is not granted to you" + (
            " under the same or stricter conditions" if cond or mine.conditional(cap) else ""
        )
    for m in my_denies:
        if not ends_meet(grant.ends, m.ends):
            continue
        taken_back = [
            auto(n.rule.path)
            for n in meet
            if implies(m.rule.conditions, n.rule.conditions) or implies(cond, n.rule.conditions)
        ]
        example = find_path([target, auto(m.rule.path)], taken_back, budget=work)
        if example is not None:
            return f"e.g. {example!r} is denied to you by {m.where}: {m.rule.summary()}"
    return None


def implies(strict: Conditions, loose: Conditions) -> bool:
    """True when every request that satisfies ``strict`` also satisfies ``loose`` (so a
    rule with ``loose`` applies wherever one with ``strict`` does). Conservative: False
    when unsure (different timezones, IPv4 against IPv6 networks)."""
    if loose.source_cidrs:
        if not strict.source_cidrs:
            return False
        for net in strict.source_cidrs:
            if not any(
                net.version == wide.version and net.subnet_of(wide)  # type: ignore[arg-type]
                for wide in loose.source_cidrs
            ):
                return False
    if loose.mfa_within_minutes is not None and (
        strict.mfa_within_minutes is None or strict.mfa_within_minutes > loose.mfa_within_minutes
    ):
        return False
    if loose.hours is None and loose.days is None:
        return True
    if (strict.timezone or "UTC") != (loose.timezone or "UTC"):
        return False
    if loose.hours is not None and (
        strict.hours is None or not _minutes(strict.hours) <= _minutes(loose.hours)
    ):
        return False
    return loose.days is None or (strict.days is not None and strict.days <= loose.days)


def _minutes(hours: HourRange) -> frozenset[int]:
    return frozenset(m for m in range(1440) if hours.contains(m))
