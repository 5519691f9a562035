"""Regexes that run in linear time, for the patterns a scan's user supplies (custom rules).

Python's ``re`` backtracks: a custom rule such as ``(a+)+$`` takes exponential time on
``aaaa...b`` and hung ``keysafe scan`` on one line of a scanned file. Custom rules are
compiled with RE2 instead (``google-re2``), whose matching time is linear in the text
whatever the pattern. RE2 speaks Go's syntax, which is what gitleaks rules are written
in (``[[:alpha:]]``, ``\\z``, ``(?i)`` anywhere), so patterns are compiled as written.
RE2 has no backreferences and no lookaround: such a pattern is refused with
:class:`UnsupportedRegex`, never run on the backtracking engine.

The engine searches windows of a text (the lines where a rule's keywords occur). The
RE2 binding re-encodes the whole text and walks it from the start on every call, so a
window is searched in a slice of the text (one character of context before it, for
``^`` and ``\\b``) and the match positions are moved back into the whole text; each call
then costs its window, not the text.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import re2  # type: ignore[import-untyped]  # google-re2 ships no type information


class UnsupportedRegex(ValueError):
    """A pattern RE2 cannot compile: invalid, or a feature it lacks (backreferences,
    lookaround); the message is RE2's."""


class LinearMatch:
    """One match, with positions in the whole text (the ``re.Match`` subset rules use)."""

    __slots__ = ("_names", "_spans", "string")

    def __init__(self, string: str, spans: list[tuple[int, int]], names: dict[str, int]) -> None:
        self.string = string
        self._spans = spans
        self._names = names

    def _index(self, group: int | str) -> int:
        index = self._names.get(group, -1) if isinstance(group, str) else group
        if not 0 <= index < len(self._spans):
            raise IndexError("no such group")
        return index

    def span(self, group: int | str = 0) -> tuple[int, int]:
        """``(start, end)`` of ``group``, ``(-1, -1)`` when it took no part in the match."""
        return self._spans[self._index(group)]

    def start(self, group: int | str = 0) -> int:
        return self.span(group)[0]

    def end(self, group: int | str = 0) -> int:
        return self.span(group)[1]

    def group(self, group: int | str = 0) -> str | Any:
        """The text of ``group``, None when it took no part; IndexError when there is none."""
        start, end = self.span(group)
        return None if start < 0 else self.string[start:end]


class LinearPattern:
    """A pattern compiled by RE2 (the ``re.Pattern`` subset the scan engine uses)."""

    __slots__ = ("_groups", "_names", "_regexp", "pattern")

    def __init__(self, pattern: str) -> None:
        options = re2.Options()
        options.log_errors = False  # errors are raised, not written to stderr by RE2 itself
        try:
            self._regexp = re2.compile(pattern, options)
        except re2.error as exc:
            raise UnsupportedRegex(_reason(exc)) from None
        self.pattern = pattern
        self._groups: int = self._regexp.groups
        self._names: dict[str, int] = dict(self._regexp.groupindex)

    def __repr__(self) -> str:
        return f"LinearPattern({self.pattern!r})"

    def _window(self, string: str, pos: int, endpos: int | None) -> tuple[str, int, int]:
        """The slice to search, where in it to start, and the slice's offset in ``string``."""
        size = len(string)
        stop = size if endpos is None else max(0, min(endpos, size))
        begin = max(0, min(pos, stop))
        base = begin - 1 if begin > 0 else 0  # one character of context for ^ and \b
        return string[base:stop], begin - base, base

    def _wrap(self, string: str, found: Any, base: int) -> LinearMatch:
        spans = []
        for index in range(self._groups + 1):
            start, end = found.span(index)
            spans.append((start + base, end + base) if start >= 0 else (-1, -1))
        return LinearMatch(string, spans, self._names)

    def search(self, string: str, pos: int = 0, endpos: int | None = None) -> LinearMatch | None:
        """The first match in ``string[pos:endpos]``, as ``re.Pattern.search``."""
        window, at, base = self._window(string, pos, endpos)
        found = self._regexp.search(window, at)
        return None if found is None else self._wrap(string, found, base)

    def match(self, string: str, pos: int = 0, endpos: int | None = None) -> LinearMatch | None:
        """A match that starts at ``pos``, as ``re.Pattern.match``."""
        window, at, base = self._window(string, pos, endpos)
        found = self._regexp.match(window, at)
        return None if found is None else self._wrap(string, found, base)

    def finditer(
        self, string: str, pos: int = 0, endpos: int | None = None
    ) -> Iterator[LinearMatch]:
        """Every non-overlapping match in ``string[pos:endpos]``, left to right."""
        window, at, base = self._window(string, pos, endpos)
        for found in self._regexp.finditer(window, at):
            yield self._wrap(string, found, base)


def _reason(exc: Exception) -> str:
    detail = exc.args[0] if exc.args else exc
    if isinstance(detail, bytes):
        detail = detail.decode("utf-8", "replace")
    text = str(detail)
    if any(op in text for op in ("(?=", "(?!", "(?<=", "(?<!")):
        text += " (lookaround is not supported: rules run on RE2, in linear time)"
    elif "invalid escape sequence: \\" in text and text.rstrip()[-1:].isdigit():
        text += " (backreferences are not supported: rules run on RE2, in linear time)"
    return text
