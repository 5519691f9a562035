"""Find and replace secrets in a text: values read from keysafe, and what scan rules see.

A remembered value (``keysafe.redact.registry``) becomes ``[REDACTED:<its path>]``; a
string one of the scanner's rules recognises (an AWS key, a GitHub token, a keysafe API
key, ``password=...``) becomes ``[REDACTED:<rule id>]``. Matching a value costs one
keyed hash per token of a length that some value has; the rules run over the text once
(Aho-Corasick keywords, then each rule's regex near its keyword).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from keysafe.redact.registry import Registry, process_registry
from keysafe.redact.tokens import tokens

if TYPE_CHECKING:
    from keysafe.scan.engine import Engine

MAX_TEXT = 64 * 1024  # beyond this, only the first part is searched by rules (cost cap)


class Redactor:
    """Redacts texts; build once (rules compile here), share between threads.

    ``registry`` defaults to this process's (what the SDK read, or what ``keysafe run``
    handed down); ``rules`` False skips the scanner's rules (known values only)."""

    def __init__(self, registry: Registry | None = None, *, rules: bool = True) -> None:
        self._registry = registry
        self._engine: Engine | None = _rules_engine() if rules else None

    @property
    def registry(self) -> Registry:
        return self._registry if self._registry is not None else process_registry()

    def redact(self, text: str) -> str:
        """``text`` with every known value and rule hit replaced by ``[REDACTED:...]``."""
        spans = self.find(text)
        if not spans:
            return text
        out: list[str] = []
        at = 0
        for start, end, label in spans:
            out.append(text[at:start])
            out.append(f"[REDACTED:{label}]")
            at = end
        out.append(text[at:])
        return "".join(out)

    def find(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, label) of each secret in ``text``, in order, not overlapping."""
        found = self._known(text)
        if self._engine is not None and text:
            for hit in self._engine.matches(text[:MAX_TEXT]):
                found.append((hit.start, hit.end, hit.rule_id))
        if not found:
            return []
        found.sort(key=lambda s: (s[0], -(s[1] - s[0])))
        kept: list[tuple[int, int, str]] = []
        for span in found:
            if kept and span[0] < kept[-1][1]:
                continue  # inside (or across) one already kept: the first, longest wins
            kept.append(span)
        return kept

    def _known(self, text: str) -> list[tuple[int, int, str]]:
        registry = self.registry
        if not len(registry):
            return []
        found = []
        lengths, head_lengths = registry.lengths, registry.head_lengths
        for start, end in tokens(text):
            size = end - start
            if size in lengths:
                known = registry.lookup(text[start:end])
                if known is not None:
                    found.append((start, end, known.path))
            if size in head_lengths:
                # A value with delimiters inside starts with this token: try its lengths.
                for length in registry.spaced_lengths(text[start:end]):
                    known = registry.lookup(text[start : start + length])
                    if known is not None and start + length <= len(text):
                        found.append((start, start + length, known.path))
        return found


def _rules_engine() -> Engine:
    from keysafe.scan.engine import Engine
    from keysafe.scan.rules import builtin_rules

    return Engine(builtin_rules())


def redact_text(text: str, redactor: Callable[[str], str] | None = None) -> str:
    """``text`` redacted by a shared default :class:`Redactor` (built on first use)."""
    return (redactor or _default().redact)(text)


_shared: Redactor | None = None


def _default() -> Redactor:
    global _shared
    if _shared is None:
        _shared = Redactor()
    return _shared
