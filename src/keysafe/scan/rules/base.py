"""The shape every detector shares, and the helpers detectors use.

Rule ids are persisted in baselines, SARIF history and users' allowlists: only ever add
rules, never rename one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from keysafe.scan.checksums import jwt_is_example
from keysafe.scan.entropy import shannon

# Values that are obviously not real secrets, whatever rule matched them.
PLACEHOLDER = re.compile(
    r"(?i)(?:x{4,}|\*{3,}|\.{3}|example|sample|dummy|mock|placeholder|changeme|change_me|"
    r"your[_-]|<[^>]*>|\{\{|\$\{|%\(|redacted|insert|replace|fake|notreal|todo)"
)


# Built-in patterns are bounded: no match reaches further than this from its keyword
# (outside the ``window`` of multi-line blocks).
BUILTIN_REACH = 1024


class RuleMatch(Protocol):
    """What the engine reads from a match: a ``re.Match``, or a
    :class:`~keysafe.scan.linear_regex.LinearMatch` for custom rules."""

    @property
    def string(self) -> str: ...
    def group(self, group: int | str, /) -> str | Any: ...
    def start(self, group: int | str = 0, /) -> int: ...
    def end(self, group: int | str = 0, /) -> int: ...


class RulePattern(Protocol):
    """A compiled pattern: ``re.Pattern`` for built-in rules (reviewed, keyword-gated),
    :class:`~keysafe.scan.linear_regex.LinearPattern` (RE2) for what users supply."""

    def search(self, string: str, pos: int = 0, /) -> RuleMatch | None: ...
    def match(self, string: str, pos: int, endpos: int, /) -> RuleMatch | None: ...
    def finditer(self, string: str, pos: int, endpos: int, /) -> Iterator[RuleMatch]: ...


@dataclass(frozen=True)
class Rule:
    """A detector: keywords that gate it, a regex, and checks on what the regex found.

    ``keywords`` are lowercase literals; the engine only runs ``regex`` on lines where
    one of them occurs. A rule without keywords runs on the whole text.
    """

    id: str
    description: str
    regex: RulePattern
    keywords: tuple[str, ...] = ()
    secret_group: int | str = 0
    min_entropy: float = 0.0
    validator: Callable[[str], bool] | None = None
    severity: str = "high"
    # Characters after the keyword's line the regex may span (PEM blocks).
    window: int = 0
    # Generic rules yield to provider rules matching the same text.
    generic: bool = False
    # The regex starts where one of its keywords starts (or one character later), so
    # the engine tries a single match there instead of searching the whole line.
    anchored: bool = False
    # A match lies within this many characters of its keyword (0: anywhere on the
    # line), so a minified line is searched near each keyword rather than whole.
    reach: int = 0
    allow_values: Sequence[RulePattern] = field(default=())
    allow_paths: Sequence[RulePattern] = field(default=())
    # When set, the rule applies only to paths matching one of these.
    paths: Sequence[RulePattern] = field(default=())
    stopwords: Sequence[str] = field(default=())
    # Custom rules may ask for the allowlist to test the whole match or line.
    allow_target: str = "secret"
    skip_placeholders: bool = True

    def extract(self, match: RuleMatch) -> tuple[str, int, int] | None:
        """The secret in ``match`` and its span, or ``None`` when the checks reject it."""
        group: int | str = self.secret_group
        try:
            secret = match.group(group)
        except IndexError:  # a custom rule naming a group its regex lacks
            group = 0
            secret = match.group(0)
        checked = self.check(secret, match)
        return None if checked is None else (checked, match.start(group), match.end(group))

    def check(self, secret: str | None, match: RuleMatch) -> str | None:
        """``secret`` when it passes this rule's checks, else ``None``."""
        if not secret:
            return None
        if self.min_entropy and shannon(secret) < self.min_entropy:
            return None
        if self.validator is not None and not self.validator(secret):
            return None
        if self.skip_placeholders and PLACEHOLDER.search(secret):
            return None
        if "eyJ" in secret and jwt_is_example(secret[secret.index("eyJ") :]):
            return None
        if self.stopwords:
            low = secret.lower()
            if any(word in low for word in self.stopwords):
                return None
        if self.allow_values:
            target = secret
            if self.allow_target == "match":
                target = match.group(0)
            elif self.allow_target == "line":
                target = _line_of(match)
            if any(p.search(target) for p in self.allow_values):
                return None
        return secret


def _line_of(match: RuleMatch, reach: int = 4096) -> str:
    """The match's line, cut ``reach`` characters either side (minified lines)."""
    text, first, last = match.string, match.start(), match.end()
    start = text.rfind("\n", max(0, first - reach), first) + 1 or max(0, first - reach)
    end = text.find("\n", last, last + reach)
    return text[start : end if end >= 0 else last + reach]


def rule(
    rule_id: str,
    description: str,
    pattern: str,
    keywords: Sequence[str],
    **options: object,
) -> Rule:
    """Build a :class:`Rule` from a pattern string; keywords are lowercased."""
    options.setdefault("reach", BUILTIN_REACH)
    return Rule(
        id=rule_id,
        description=description,
        regex=re.compile(pattern),
        keywords=tuple(k.lower() for k in keywords),
        **options,  # type: ignore[arg-type]
    )
