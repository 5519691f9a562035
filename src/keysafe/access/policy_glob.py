"""Path globs of policy rules, and their translation to regular expressions.

Secret paths are ``/``-separated segments (``payments/prod/STRIPE_KEY``); a folder is
written with a trailing slash when it is the object of a request (``payments/prod/``).
A glob matches the WHOLE path:

=============  =====================================================================
``abc``        itself only: exact paths match themselves, nothing else
``*``          zero or more characters inside one segment (never ``/``)
``?``          exactly one character inside one segment (never ``/``)
``**``         a whole segment only: zero or more whole segments, across ``/``
``a/**/b``     ``a/b``, ``a/x/b``, ``a/x/y/b``
``**/b``       ``b``, ``x/b``, ``x/y/b``
``a/**``       everything inside ``a``: ``a/``, ``a/x``, ``a/x/y``; NOT ``a`` itself
``a/b/*``      ``a/b/x`` and the folder form ``a/b/`` (``*`` may be empty); NOT ``a/b``
``**``         every path
=============  =====================================================================

A rule for a folder therefore never matches the folder's own name without the slash:
``a/b/*`` does not cover a secret called ``a/b``. A trailing ``**`` needs at least the
slash for the same reason (everything inside, like gitignore's ``abc/**``).

Rejected, so that a glob means one thing and the syntax can grow: an empty glob, a leading
``/``, an empty segment (``a//b``), ``**`` inside a segment (``a**``), and the characters
``[ ] { } \\`` (reserved for classes, alternatives and escapes). Matching is
case-sensitive.
"""

from __future__ import annotations

import re

RESERVED = frozenset("[]{}\\")


class GlobError(ValueError):
    """A glob that :func:`check_glob` rejects; the message says why."""


def check_glob(glob: str) -> None:
    """Raise :class:`GlobError` unless ``glob`` follows the documented syntax."""
    if not glob:
        raise GlobError("the path glob is empty")
    if glob.startswith("/"):
        raise GlobError("a path glob does not start with '/'")
    bad = sorted(RESERVED.intersection(glob))
    if bad:
        raise GlobError(f"{bad[0]!r} is reserved in path globs")
    segments = glob.split("/")
    for i, segment in enumerate(segments):
        if segment == "" and i != len(segments) - 1:
            raise GlobError("a path glob has no empty segments ('//')")
        if "**" in segment and segment != "**":
            raise GlobError("'**' must be a whole path segment, as in 'a/**/b'")


def glob_to_regex(glob: str) -> str:
    """The regular expression (for ``re.fullmatch`` with ``re.DOTALL``) of a checked glob."""
    check_glob(glob)
    segments = glob.split("/")
    last = len(segments) - 1
    out: list[str] = []
    for i, segment in enumerate(segments):
        if segment == "**":
            # Trailing: everything after the slash already written; elsewhere: zero or more
            # whole segments, each with its slash.
            out.append(".*" if i == last else "(?:.*/)?")
            continue
        out.append(_segment_regex(segment))
        if i != last:
            out.append("/")
    return "".join(out)


def _segment_regex(segment: str) -> str:
    parts: list[str] = []
    for char in segment:
        if char == "*":
            parts.append("[^/]*")
        elif char == "?":
            parts.append("[^/]")
        else:
            parts.append(re.escape(char))
    return "".join(parts)


def literal_head(glob: str) -> str | None:
    """The first segment of ``glob`` when it holds no wildcard, else None.

    Rules are indexed by it: a request for ``payments/prod/X`` only looks at the rules whose
    glob starts with ``payments`` plus those that start with a wildcard.
    """
    head = glob.partition("/")[0]
    if "*" in head or "?" in head:
        return None
    return head


def compile_glob(glob: str) -> re.Pattern[str]:
    """The compiled pattern of a checked glob, to use with ``fullmatch``."""
    return re.compile(glob_to_regex(glob), re.DOTALL)
