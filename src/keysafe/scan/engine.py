"""One pass over the text for all rules: an Aho-Corasick keyword prefilter, then each
rule's precise regex only on the lines where one of its keywords occurs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import ahocorasick

from keysafe.scan.known import KNOWN_RULE, KnownDigests, KnownSecret
from keysafe.scan.models import Finding, Location, Match
from keysafe.scan.rules.base import Rule, RuleMatch, RulePattern

ALLOW_MARKER = "keysafe:allow"


class Engine:
    """Matches a fixed rule set against texts; build once, reuse for every text."""

    def __init__(
        self,
        rules: Sequence[Rule],
        allow_paths: Sequence[RulePattern] = (),
        allow_values: Sequence[RulePattern] = (),
        stopwords: Sequence[str] = (),
        known: KnownDigests | None = None,
    ) -> None:
        self.rules = list(rules)
        # Values stored in keysafe (``--known``), matched by keyed digest, not by rule.
        self.known = known
        self.by_id = {r.id: r for r in self.rules}
        self.allow_paths = list(allow_paths)
        self.allow_values = list(allow_values)
        self.stopwords = [w.lower() for w in stopwords]
        self._always = [i for i, r in enumerate(self.rules) if not r.keywords]
        self._automaton: ahocorasick.Automaton | None = None
        keyed: dict[str, list[int]] = {}
        for index, current in enumerate(self.rules):
            for keyword in current.keywords:
                keyed.setdefault(keyword, []).append(index)
        if keyed:
            automaton = ahocorasick.Automaton()
            for keyword, indexes in keyed.items():
                automaton.add_word(keyword, (len(keyword), tuple(indexes)))
            automaton.make_automaton()
            self._automaton = automaton

    def path_allowed(self, path: str) -> bool:
        """True when ``path`` is on the global path allowlist (never scanned)."""
        return any(p.search(path) for p in self.allow_paths)

    def matches(self, text: str) -> list[Match]:
        """Every rule hit in ``text``, overlapping generic hits removed."""
        found: dict[tuple[int, int], Match] = {}
        rules = self.rules
        if self._automaton is not None:
            # bytes.lower() changes ASCII only, so offsets stay aligned with ``text`` (and
            # it is faster than str.lower(), which also changes length for some letters).
            lower = text.encode("utf-8", "surrogatepass").lower().decode("utf-8", "surrogatepass")
            seen: set[tuple[int, int]] = set()
            ends: dict[int, int] = {}
            size = len(text)
            for end, (length, indexes) in self._automaton.iter(lower):
                start = text.rfind("\n", 0, end) + 1
                line_end = ends.get(start)
                if line_end is None:
                    line_end = text.find("\n", end)
                    line_end = ends[start] = size if line_end < 0 else line_end
                for index in indexes:
                    current = rules[index]
                    stop = min(size, line_end + current.window) if current.window else line_end
                    if current.anchored:
                        # One match attempt at the keyword instead of a search of the line.
                        hit = end - length + 1
                        if (hit, index) not in seen:
                            seen.add((hit, index))
                            self._run_at(current, text, hit, stop, found)
                    elif (start, index) not in seen:
                        seen.add((start, index))
                        self._run(current, text, start, stop, found)
        for index in self._always:
            self._run(rules[index], text, 0, len(text), found)
        return _drop_overlaps(found.values())

    @staticmethod
    def _run(
        rule: Rule, text: str, start: int, stop: int, found: dict[tuple[int, int], Match]
    ) -> None:
        for match in rule.regex.finditer(text, start, stop):
            _keep(rule, match, found)

    @staticmethod
    def _run_at(
        rule: Rule, text: str, hit: int, stop: int, found: dict[tuple[int, int], Match]
    ) -> None:
        # A keyword may carry one leading character the regex does not ("_pass").
        for pos in (hit, hit + 1):
            match = rule.regex.match(text, pos, stop)
            if match is not None:
                _keep(rule, match, found)
                return

    def scan_text(self, text: str, location: Location) -> list[Finding]:
        """Findings in ``text``, placed at ``location`` (lines and columns 1-based)."""
        raw = self.matches(text)
        stored: dict[tuple[int, int], KnownSecret] = {}
        if self.known is not None:
            taken = {(m.start, m.end) for m in raw}
            for match, secret in self.known.find(text):
                if (match.start, match.end) not in taken:
                    stored[(match.start, match.end)] = secret
                    raw.append(match)
            raw.sort(key=lambda m: m.start)
        if not raw:
            return []
        findings = []
        line, counted = 1, 0
        for hit in raw:  # sorted by start: count newlines incrementally, in C
            line += text.count("\n", counted, hit.start)
            counted = hit.start
            known = stored.get((hit.start, hit.end)) if stored else None
            if known is not None:
                rule = KNOWN_RULE
                description = f"value stored in keysafe at {known.path} (version {known.version})"
            else:
                rule = self.by_id[hit.rule_id]
                description = rule.description
                if not self._wanted(rule, hit.secret, location.path):
                    continue
            line_start = text.rfind("\n", 0, hit.start) + 1
            line_end = text.find("\n", hit.start)
            if ALLOW_MARKER in text[line_start : line_end if line_end >= 0 else len(text)]:
                continue
            findings.append(
                Finding(
                    rule=rule.id,
                    description=description,
                    file=location.path,
                    line=location.real_line(line),
                    column=hit.start - line_start + 1,
                    end_column=hit.end - line_start + 1,
                    secret=hit.secret,
                    severity=rule.severity,
                    commit=location.commit,
                    author=location.author,
                    date=location.date,
                )
            )
        return findings

    def _wanted(self, rule: Rule, secret: str, path: str) -> bool:
        if rule.paths and not any(p.search(path) for p in rule.paths):
            return False
        if rule.allow_paths and any(p.search(path) for p in rule.allow_paths):
            return False
        if self.allow_values and any(p.search(secret) for p in self.allow_values):
            return False
        low = secret.lower()
        return not any(word in low for word in self.stopwords)


def _keep(rule: Rule, match: RuleMatch, found: dict[tuple[int, int], Match]) -> None:
    extracted = rule.extract(match)
    if extracted is None:
        return
    secret, s_start, s_end = extracted
    key = (s_start, s_end)
    previous = found.get(key)
    # Provider rules win over generic ones for the same span.
    if previous is None or (previous.generic and not rule.generic):
        found[key] = Match(rule.id, s_start, s_end, secret, rule.generic)


def _drop_overlaps(matches: Iterable[Match]) -> list[Match]:
    """Drop generic hits that overlap a provider hit, and hits inside a longer one."""
    ordered = sorted(matches, key=lambda m: (m.start, -(m.end - m.start), m.generic))
    kept: list[Match] = []
    specific = [m for m in ordered if not m.generic]
    for hit in ordered:
        if hit.generic and any(s.start < hit.end and hit.start < s.end for s in specific):
            continue
        if kept and hit.start < kept[-1].end and hit.end <= kept[-1].end:
            continue
        kept.append(hit)
    return kept
