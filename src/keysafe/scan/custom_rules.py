"""Custom rules from TOML, in the gitleaks rule format so teams can bring their own.

Understood: ``[[rules]]`` with ``id``, ``description``, ``regex``, ``secretGroup``,
``entropy``, ``keywords``, ``path``, ``tags`` and ``[rules.allowlist]`` /
``[[rules.allowlists]]`` (``regexes``, ``paths``, ``stopwords``, ``regexTarget``); a global
``[allowlist]`` / ``[[allowlists]]``; ``[extend] useDefault = false`` to drop the
built-in rules.

Every pattern (rule, allowlist, path filter) runs on RE2 (:mod:`keysafe.scan.linear_regex`),
in time linear in the text: the patterns come from whoever wrote the rules file and the
text from whatever is scanned, and Python's backtracking ``re`` hangs on a rule such as
``(a+)+$``. RE2 reads Go's syntax as gitleaks does. A pattern it cannot run (backreferences,
lookaround) is an input error naming the file, line and rule.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keysafe.errors import InvalidInput
from keysafe.scan.linear_regex import LinearPattern, UnsupportedRegex
from keysafe.scan.rules.base import Rule, RulePattern


@dataclass
class RuleSet:
    """Rules and global allowlists read from one file."""

    rules: list[Rule] = field(default_factory=list)
    allow_paths: list[RulePattern] = field(default_factory=list)
    allow_values: list[RulePattern] = field(default_factory=list)
    stopwords: list[str] = field(default_factory=list)
    use_default: bool = True
    warnings: list[str] = field(default_factory=list)


def load(path: str | Path) -> RuleSet:
    """Read custom rules from ``path``. Raises InvalidInput naming the file, line and rule."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read rules file {name}: {exc.strerror}") from exc
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{name}: invalid TOML: {exc}") from exc
    return parse(doc, text, name)


def parse(doc: dict[str, Any], text: str, name: str) -> RuleSet:
    """A :class:`RuleSet` from a parsed TOML document (``text`` locates errors)."""
    result = RuleSet()
    extend = doc.get("extend", {})
    if isinstance(extend, dict) and extend.get("useDefault") is False:
        result.use_default = False
    for allow in _allowlists(doc):
        result.allow_paths += [_compile(p, name, text, "allowlist") for p in allow.get("paths", [])]
        result.allow_values += [
            _compile(p, name, text, "allowlist") for p in allow.get("regexes", [])
        ]
        result.stopwords += [str(w).lower() for w in allow.get("stopwords", [])]
    for entry in doc.get("rules", []):
        rule_id = str(entry.get("id") or "").strip()
        if not rule_id:
            raise InvalidInput(f"{name}: a [[rules]] entry has no id")
        where = f"rule '{rule_id}'"
        if "regex" not in entry:
            result.warnings.append(
                f"{name}: {where} has no regex (path-only rules are not supported); skipped"
            )
            continue
        allow_values: list[RulePattern] = []
        allow_paths: list[RulePattern] = []
        stopwords: list[str] = []
        target = "secret"
        for allow in _allowlists(entry):
            allow_values += [_compile(p, name, text, rule_id) for p in allow.get("regexes", [])]
            allow_paths += [_compile(p, name, text, rule_id) for p in allow.get("paths", [])]
            stopwords += [str(w).lower() for w in allow.get("stopwords", [])]
            target = str(allow.get("regexTarget", target))
        path_filter = entry.get("path")
        result.rules.append(
            Rule(
                id=rule_id,
                description=str(entry.get("description") or rule_id),
                regex=_compile(str(entry["regex"]), name, text, rule_id),
                keywords=tuple(str(k).lower() for k in entry.get("keywords", [])),
                secret_group=int(entry.get("secretGroup", 0)),
                min_entropy=float(entry.get("entropy", 0.0)),
                severity=str(entry.get("severity", "high")),
                allow_values=tuple(allow_values),
                allow_paths=tuple(allow_paths),
                paths=(_compile(str(path_filter), name, text, rule_id),) if path_filter else (),
                stopwords=tuple(stopwords),
                allow_target=target,
                # A team's own rule means what it says: no built-in placeholder filter.
                skip_placeholders=False,
            )
        )
    return result


def _allowlists(table: dict[str, Any]) -> list[dict[str, Any]]:
    found = table.get("allowlists", [])
    single = table.get("allowlist")
    if isinstance(single, dict):
        found = [single, *found]
    return [a for a in found if isinstance(a, dict)]


def _compile(pattern: str, name: str, text: str, rule_id: str) -> LinearPattern:
    try:
        return LinearPattern(pattern)
    except UnsupportedRegex as exc:
        line = _line_of(text, rule_id)
        where = f"{name}:{line}" if line else name
        raise InvalidInput(f"{where}: rule '{rule_id}': invalid regex: {exc}") from exc


def _line_of(text: str, rule_id: str) -> int:
    """The line of ``id = "<rule_id>"`` in the TOML text, 0 when not found."""
    wanted = re.compile(r"""^\s*id\s*=\s*["']""" + re.escape(rule_id) + r"""["']""")
    for number, line in enumerate(text.splitlines(), 1):
        if wanted.match(line):
            return number
    return 0
