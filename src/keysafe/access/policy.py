"""The policy engine: compiled policy documents that decide and explain access requests.

Semantics, for every request (capability, path, source, time, MFA time):

1. A rule *matches* when its path glob matches the path (see
   :mod:`keysafe.access.policy_glob`) and it lists the capability (a deny without
   ``capabilities`` lists them all). It *applies* when it matches and every one of its
   conditions holds (see :mod:`keysafe.access.policy_rules`).
2. Any applicable deny, in any policy of the set and in any position, denies; the Deny
   names the first one in policy and file order.
3. Otherwise the first applicable allow grants, and the Allow names it.
4. Otherwise the request is denied: no rule, no access. When an allow matched but did
   not apply only because its MFA was missing or too old, the reason says
   ``requires MFA within N minutes`` (the least demanding such rule), so that the server
   can ask for step-up instead of refusing outright.

Paths are compared as given (case-sensitive, not normalised): callers pass canonical
secret paths, with a trailing slash for a folder (``payments/prod/``).

Speed: rules are indexed by the first segment of their glob when it is literal
(``payments/...``), and each (first segment, capability) bucket keeps its unconditional
denies and allows in set order, so the first glob that matches decides. Globs are matched
without regexes (no backtracking on a hostile path). The rules a (capability, path) pair
matches never change, so that *plan* is cached (LRU per :class:`PolicySet`, no global
state); conditions are evaluated again on every request, so the cache is never stale.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

from keysafe.access.models import Allow, Decision, Deny
from keysafe.access.policy_glob import compile_glob, literal_head
from keysafe.access.policy_parse import parse_policy
from keysafe.access.policy_rules import (
    ALL_CAPABILITIES,
    CAPABILITIES,
    MFA,
    AccessRequest,
    Conditions,
    IPAddress,
    Policy,
    Rule,
    source_address,
)
from keysafe.errors import InvalidInput

__all__ = [
    "CAPABILITIES",
    "AccessRequest",
    "Conditions",
    "Explanation",
    "Policy",
    "PolicySet",
    "Rule",
    "RuleOutcome",
    "parse_policy",
]


class _Entry:
    """One rule of one policy, compiled; ``order`` is its position in the whole set."""

    __slots__ = (
        "allowed",
        "conditions",
        "denied",
        "glob",
        "label",
        "matches",
        "needle",
        "order",
        "policy",
        "prefix",
        "rule",
    )

    def __init__(self, order: int, policy: str, rule: Rule) -> None:
        self.order = order
        self.policy = policy
        self.rule = rule
        self.glob = compile_glob(rule.path)
        # Held directly: the bucket loops test these for every rule they hold.
        self.prefix = self.glob.prefix
        self.needle = self.glob.needle
        self.matches = self.glob.matches
        self.conditions: Conditions | None = rule.conditions if rule.conditions else None
        self.label = f"policy {policy}, rule {rule.index} (line {rule.line}): {rule.summary()}"
        # Built once: deciding by a rule returns the same immutable value every time.
        self.allowed = Allow(f"allowed by {self.label}", self.label)
        self.denied = Deny(f"denied by {self.label}", self.label)

    @property
    def mfa_minutes(self) -> int:
        return self.conditions.mfa_within_minutes or 0 if self.conditions else 0


class _Bucket:
    """The rules one request has to look at: those of one capability whose glob starts with
    one literal segment, merged with those that start with a wildcard, in set order."""

    __slots__ = ("allow_entries", "cond", "deny_entries")

    def __init__(self, entries: list[_Entry]) -> None:
        entries = sorted(entries, key=_order)
        self.deny_entries = tuple(e for e in entries if e.rule.deny and e.conditions is None)
        self.allow_entries = tuple(e for e in entries if not e.rule.deny and e.conditions is None)
        self.cond = tuple(e for e in entries if e.conditions is not None)


def _first_match(entries: tuple[_Entry, ...], path: str) -> _Entry | None:
    """The first of ``entries`` (in set order) whose glob matches ``path``."""
    for entry in entries:
        # Prefix and needle tests in C refuse most rules without a Python call.
        if path.startswith(entry.prefix) and entry.needle in path and entry.matches(path):
            return entry
    return None


def _order(entry: _Entry) -> int:
    return entry.order


class _Plan:
    """What a (capability, path) pair depends on when conditions are involved: conditional
    rules to evaluate on each request, each list in set order and cut at the first
    unconditional rule of its kind (which decides when none of them applies). Pairs that
    depend on no condition are cached as their Decision instead."""

    __slots__ = ("allow", "cond_allows", "cond_denies", "deny")

    def __init__(
        self,
        cond_denies: tuple[_Entry, ...],
        deny: _Entry | None,
        cond_allows: tuple[_Entry, ...],
        allow: _Entry | None,
    ) -> None:
        self.cond_denies = cond_denies
        self.deny = deny
        self.cond_allows = cond_allows
        self.allow = allow


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    """One rule whose glob matched the request's path, and what it did about it."""

    policy: str
    rule: Rule
    label: str
    applies: bool
    note: str  # "applies", "does not cover write", "condition failed: MFA older than 15 min"


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a request got its decision: the deciding rule and every rule that matched."""

    request: AccessRequest
    decision: Decision
    deciding: str | None  # the deciding rule's label, as in Allow.rule / Deny.rule
    outcomes: tuple[RuleOutcome, ...]
    mfa_required_within: int | None = None  # set when step-up MFA would grant the request

    def lines(self) -> list[str]:
        """Human text for ``policy check``."""
        verdict = "ALLOW" if self.decision else "DENY"
        req = self.request
        out = [f"{verdict} {req.capability} on {req.path!r}: {self.decision.reason}"]
        out.append(f"deciding rule: {self.deciding or 'none (no rule grants this request)'}")
        if not self.outcomes:
            out.append("no rule matches this path")
        for outcome in self.outcomes:
            out.append(f"  {outcome.label}: {outcome.note}")
        return out


class PolicySet:
    """Several policies compiled together, e.g. those bound to one API key or role.

    ``cache_size`` bounds the LRU of per-(capability, path) plans. Raises
    :class:`InvalidInput` when two policies share a name.
    """

    def __init__(self, policies: Iterable[Policy], *, cache_size: int = 65_536) -> None:
        self.policies = tuple(policies)
        names = [p.name for p in self.policies]
        if len(set(names)) != len(names):
            raise InvalidInput("policy names in a set must be unique")
        self._entries: list[_Entry] = []
        for policy in self.policies:
            for rule in policy.rules:
                self._entries.append(_Entry(len(self._entries), policy.name, rule))
        self._by_head: dict[str | None, dict[str, list[_Entry]]] = {}
        for entry in self._entries:
            per_cap = self._by_head.setdefault(literal_head(entry.rule.path), {})
            for cap in entry.rule.capabilities:
                per_cap.setdefault(cap, []).append(entry)
        wild = self._by_head.get(None, {})
        self._wild = {cap: _Bucket(entries) for cap, entries in wild.items()}
        # Buckets of literal heads merged with the wildcard rules, built on first use (a
        # bounded set: one per literal head and capability that the policies name).
        self._merged: dict[tuple[str, str], _Bucket] = {}
        self._plan = functools.lru_cache(maxsize=cache_size)(self._compute_plan)
        # Parsing a textual address costs more than the rest of a conditional decision.
        self._address = functools.lru_cache(maxsize=4096)(source_address)

    def decide(self, request: AccessRequest) -> Decision:
        """Allow or Deny ``request``; never raises for any capability or path."""
        plan = self._plan(request.capability, request.path)
        if not isinstance(plan, _Plan):
            return plan
        ip = self._address(request.source)
        for entry in plan.cond_denies:
            if entry.conditions is not None and entry.conditions.holds(request, ip):
                return entry.denied
        if plan.deny is not None:
            return plan.deny.denied
        for entry in plan.cond_allows:
            if entry.conditions is not None and entry.conditions.holds(request, ip):
                return entry.allowed
        if plan.allow is not None:
            return plan.allow.allowed
        return _no_grant(request, ip, plan.cond_allows)

    def explain(self, request: AccessRequest) -> Explanation:
        """The decision of :meth:`decide` with the rule that made it and every rule whose
        glob matched the path (in set order), each with why it did or did not apply."""
        decision = self.decide(request)
        outcomes: list[RuleOutcome] = []
        step_up: list[int] = []
        ip = source_address(request.source)
        path = request.path
        for entry in self._entries:
            if not (path.startswith(entry.prefix) and entry.needle in path and entry.matches(path)):
                continue
            rule = entry.rule
            if request.capability not in rule.capabilities:
                note, applies = f"does not cover {request.capability}", False
            else:
                failures = rule.conditions.failures(request, ip)
                applies = not failures
                note = (
                    "applies"
                    if applies
                    else "condition failed: " + "; ".join(reason for _, reason in failures)
                )
                if failures and not rule.deny and all(kind == MFA for kind, _ in failures):
                    step_up.append(entry.mfa_minutes)
            outcomes.append(RuleOutcome(entry.policy, rule, entry.label, applies, note))
        # Step-up helps only when nothing denied and no rule granted.
        minutes = max(step_up) if step_up and not decision and decision.rule is None else None
        return Explanation(request, decision, decision.rule, tuple(outcomes), minutes)

    def cache_info(self) -> functools._CacheInfo:
        """Hits and misses of the plan cache (for benchmarks and tuning)."""
        return self._plan.cache_info()

    def _bucket(self, capability: str, head: str) -> _Bucket | None:
        bucket = self._merged.get((head, capability))
        if bucket is not None:
            return bucket
        literal = self._by_head.get(head)
        if literal is None or capability not in literal:
            return self._wild.get(capability)
        bucket = _Bucket(literal[capability] + self._by_head.get(None, {}).get(capability, []))
        self._merged[head, capability] = bucket
        return bucket

    def _compute_plan(self, capability: str, path: str) -> Decision | _Plan:
        bucket = self._bucket(capability, path.partition("/")[0])
        if bucket is None:
            if capability not in ALL_CAPABILITIES:
                return Deny(f"unknown capability {capability!r}")
            return Deny(_nothing_grants(capability, path))
        deny = _first_match(bucket.deny_entries, path)
        conditional = [
            e
            for e in bucket.cond
            if path.startswith(e.prefix) and e.needle in path and e.matches(path)
        ]
        if deny is not None:
            early = tuple(e for e in conditional if e.rule.deny and e.order < deny.order)
            return _Plan(early, deny, (), None) if early else deny.denied
        allow = _first_match(bucket.allow_entries, path)
        if conditional:
            cond_denies = tuple(e for e in conditional if e.rule.deny)
            cond_allows = tuple(
                e
                for e in conditional
                if not e.rule.deny and (allow is None or e.order < allow.order)
            )
            if cond_denies or cond_allows:
                return _Plan(cond_denies, None, cond_allows, allow)
        if allow is not None:
            return allow.allowed
        return Deny(_nothing_grants(capability, path))


def _nothing_grants(capability: str, path: str) -> str:
    return f"no rule grants {capability} on {path!r}"


def _no_grant(request: AccessRequest, ip: IPAddress | None, blocked: tuple[_Entry, ...]) -> Deny:
    """The Deny when no rule granted; ``blocked`` are the allows whose conditions failed."""
    base = _nothing_grants(request.capability, request.path)
    step_up = [
        e
        for e in blocked
        if e.conditions is not None
        and e.conditions.mfa_within_minutes is not None
        and e.conditions.holds(request, ip, mfa=False)
    ]
    if step_up:
        # Name the least demanding step-up that would grant the request.
        entry = max(step_up, key=lambda e: e.mfa_minutes)
        return Deny(
            f"{request.capability} on {request.path!r} requires MFA within"
            f" {entry.mfa_minutes} minutes ({entry.label})",
            mfa_within=entry.mfa_minutes,
        )
    if len(blocked) == 1:
        return Deny(f"{base}: 1 rule matches but its conditions do not hold")
    if blocked:
        return Deny(f"{base}: {len(blocked)} rules match but their conditions do not hold")
    return Deny(base)
