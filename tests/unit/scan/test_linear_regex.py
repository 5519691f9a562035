"""RE2-backed patterns for custom rules: the ``re`` behaviour the engine relies on, in
linear time, and clear refusals for what RE2 cannot run."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keysafe.scan.linear_regex import LinearPattern, UnsupportedRegex


def spans(found: object) -> list[tuple[int, int]] | None:
    if found is None:
        return None
    groups = found.re.groups if isinstance(found, re.Match) else len(found._spans) - 1  # type: ignore[attr-defined]
    return [found.span(i) for i in range(groups + 1)]  # type: ignore[attr-defined]


TEXT = "first line\nkey=abc123 tail\n  token: xéz_99\nlast"
WINDOWS = [(0, len(TEXT)), (11, 26), (27, 43), (12, 20), (44, len(TEXT)), (5, 5)]
PATTERNS = [
    r"key=(\w+)",
    r"^key",  # ^ is the start of the text only, not of the window
    r"(?m)^\s*(token): (?P<value>\S+)$",
    r"\bine\b",
    r"\btail$",  # $ at the window's end, as re treats endpos
    r"é(z)?",
    r"(a)|(b)",
    r"x*",  # empty matches
]


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize(("pos", "endpos"), WINDOWS)
def test_windows_behave_as_re(pattern: str, pos: int, endpos: int) -> None:
    ours, theirs = LinearPattern(pattern), re.compile(pattern)
    assert spans(ours.search(TEXT, pos, endpos)) == spans(theirs.search(TEXT, pos, endpos))
    assert spans(ours.match(TEXT, pos, endpos)) == spans(theirs.match(TEXT, pos, endpos))
    assert [spans(m) for m in ours.finditer(TEXT, pos, endpos)] == [
        spans(m) for m in theirs.finditer(TEXT, pos, endpos)
    ]


def test_match_reads_like_re_match() -> None:
    found = LinearPattern(r"(?P<name>k\w+)=(\d+)?(x)?").search("a key=1 b", 2, 9)
    assert found is not None
    assert found.string == "a key=1 b"
    assert (found.group(0), found.group("name"), found.group(2), found.group(3)) == (
        "key=1",
        "key",
        "1",
        None,
    )
    assert (found.start("name"), found.end(2), found.span(3)) == (2, 7, (-1, -1))
    for missing in (4, "nope"):
        with pytest.raises(IndexError):
            found.group(missing)


@given(st.text(alphabet="ab\n é_", max_size=30), st.integers(0, 32), st.integers(0, 32))
def test_random_windows_agree_with_re(text: str, pos: int, endpos: int) -> None:
    # \b and \w are ASCII in RE2, as in Go and gitleaks (see the test below).
    boundary = r"\b_?ab?\b" if text.isascii() else "a"
    for pattern in (r"a+b", r"^a", r"(?m)^b|a$", boundary, r"(é)(_)?"):
        ours, theirs = LinearPattern(pattern), re.compile(pattern)
        assert [spans(m) for m in ours.finditer(text, pos, endpos)] == [
            spans(m) for m in theirs.finditer(text, pos, endpos)
        ]


def test_catastrophic_patterns_finish() -> None:
    # Exponential for a backtracking engine; pytest-timeout guards it, RE2 takes microseconds.
    assert LinearPattern(r"(a+)+$").search("a" * 50 + "b") is None
    assert LinearPattern(r"^(\w+\s?)*$").search("word " * 2000 + "!") is None
    assert LinearPattern(r"(x|x)*y").search("x" * 100_000) is None


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        (r"key(?=\d)", "lookaround is not supported"),
        (r"key(?!\d)", "lookaround is not supported"),
        (r"(?<=key)\d+", "lookaround is not supported"),
        (r"(a)\1", "backreferences are not supported"),
        (r"(unclosed", "missing )"),
    ],
)
def test_what_re2_cannot_run_is_refused(pattern: str, why: str) -> None:
    with pytest.raises(UnsupportedRegex, match=re.escape(why)):
        LinearPattern(pattern)


def test_classes_are_ascii_as_in_go() -> None:
    # Rules are written for gitleaks (Go's RE2): \w, \d and \b know ASCII only there too.
    assert LinearPattern(r"\w+").search("é") is None
    assert LinearPattern(r"a\b").search("aé") is not None
    assert LinearPattern(r"(?i)É").search("xé") is not None  # case folding is Unicode
