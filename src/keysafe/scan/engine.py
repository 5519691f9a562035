"""One pass over the text for all rules: an Aho-Corasick keyword prefilter, then each
rule's precise regex only on the lines where one of its keywords occurs.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence

import ahocorasick

from keysafe.scan.known import KNOWN_RULE, KnownDigests, KnownSecret
from keysafe.scan.models import Finding, Location, Match
from keysafe.scan.rules.base import Rule, RuleMatch, RulePattern

ALLOW_MARKER = "keysafe:allow"
GITLEAKS_MARKER = "gitleaks:allow"


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
        """Every rule hit in ``text``, overlapping generic hits removed.

        Linear in ``text``: keyword hits arrive in order of their end, so each line's
        start is found by looking back only as far as the previous hit, never to the
        beginning of a long line again.
        """
        found: dict[tuple[int, int], Match] = {}
        rules = self.rules
        if self._automaton is not None:
            # bytes.lower() changes ASCII only, so offsets stay aligned with ``text`` (and
            # it is faster than str.lower(), which also changes length for some letters).
            lower = text.encode("utf-8", "surrogatepass").lower().decode("utf-8", "surrogatepass")
            seen: set[tuple[int, int]] = set()
            # Per rule: the span still to search, (line start, from, to); spans near
            # each other on one line are merged so no text is searched twice.
            pending: dict[int, list[int]] = {}
            size = len(text)
            start, line_end, looked = 0, -1, 0
            for end, (length, indexes) in self._automaton.iter(lower):
                if end >= line_end:
                    newline = text.rfind("\n", looked, end)
                    if newline >= 0:
                        start = newline + 1
                    line_end = text.find("\n", end)
                    if line_end < 0:
                        line_end = size
                looked = end
                hit = end - length + 1
                for index in indexes:
                    current = rules[index]
                    stop = min(size, line_end + current.window) if current.window else line_end
                    if current.anchored:
                        # One match attempt at the keyword instead of a search of the line.
                        if (hit, index) not in seen:
                            seen.add((hit, index))
                            self._run_at(current, text, hit, stop, found)
                        continue
                    reach = current.reach
                    low = max(start, hit - reach) if reach else start
                    high = min(stop, end + 1 + reach + current.window) if reach else stop
                    span = pending.get(index)
                    if span is not None and span[0] == start and low <= span[2]:
                        span[2] = max(span[2], high)
                        continue
                    if span is not None:
                        self._run(current, text, span[1], span[2], found)
                    pending[index] = [start, low, high]
            for index, span in pending.items():
                self._run(rules[index], text, span[1], span[2], found)
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

    def scan_text(self, text: str, location: Location, stop: int | None = None) -> list[Finding]:
        """Findings in ``text``, placed at ``location`` (lines and columns 1-based).

        Hits starting at or after ``stop`` are left out: the next chunk of the same
        stream starts there and reports them whole.
        """
        raw = self.matches(text)
        if stop is not None:
            raw = [m for m in raw if m.start < stop]
        stored: dict[tuple[int, int], KnownSecret] = {}
        if self.known is not None:
            taken = {(m.start, m.end) for m in raw}
            for match, secret in self.known.find(text):
                if (match.start, match.end) not in taken and (stop is None or match.start < stop):
                    stored[(match.start, match.end)] = secret
                    raw.append(match)
            raw.sort(key=lambda m: m.start)
        if not raw:
            return []
        findings = []
        line, counted = 1, 0
        line_start, allowed_line, allowed = 0, -1, False
        for hit in raw:  # sorted by start: newlines counted and found incrementally, in C
            line += text.count("\n", counted, hit.start)
            newline = text.rfind("\n", counted, hit.start)
            if newline >= 0:
                line_start = newline + 1
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
            if allowed_line != line_start:
                allowed_line, allowed = line_start, _allowed(text, line_start)
            if allowed:
                continue
            column = hit.start - line_start + 1
            if line == 1:
                column += location.column_offset
            findings.append(
                Finding(
                    rule=rule.id,
                    description=description,
                    file=location.path,
                    line=location.real_line(line),
                    column=column,
                    end_column=column + hit.end - hit.start,
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


def _allowed(text: str, line_start: int) -> bool:
    """True when the line at ``line_start``, or a comment line right above it, carries
    an allow marker (``keysafe:allow`` or ``gitleaks:allow``, any case). Looked for in
    4 KiB of each, so that a minified line is not copied once per finding."""
    line_end = text.find("\n", line_start, line_start + 4096)
    line = text[line_start : line_end if line_end >= 0 else line_start + 4096].lower()
    if ALLOW_MARKER in line or GITLEAKS_MARKER in line:
        return True
    if line_start == 0:
        return False
    above_start = text.rfind("\n", max(0, line_start - 4097), line_start - 1) + 1
    above = text[above_start : line_start - 1].strip().lower()
    marked = ALLOW_MARKER in above or GITLEAKS_MARKER in above
    return marked and above.startswith(("#", "//", "--", "/*", "<!--", ";", "*", "rem "))


def _drop_overlaps(matches: Iterable[Match]) -> list[Match]:
    """Drop generic hits that overlap a provider hit, and hits inside a longer one."""
    ordered = sorted(matches, key=lambda m: (m.start, -(m.end - m.start), m.generic))
    # Provider hits by start, with the furthest end reached so far: one bisection tells
    # whether any of them overlaps a generic hit (linear overall, not hits x providers).
    starts: list[int] = []
    reach: list[int] = []
    for m in ordered:
        if not m.generic:
            starts.append(m.start)
            reach.append(max(m.end, reach[-1]) if reach else m.end)
    kept: list[Match] = []
    for hit in ordered:
        if hit.generic:
            before = bisect_left(starts, hit.end)
            if before and reach[before - 1] > hit.start:
                continue
        if kept and hit.start < kept[-1].end and hit.end <= kept[-1].end:
            continue
        kept.append(hit)
    return kept
