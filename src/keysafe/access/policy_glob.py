"""Path globs of policy rules, and a matcher for them that cannot backtrack.

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

Matching never uses a backtracking regex: policy globs come from people who may write
``app/*-*-*-*-*`` and paths come from the network, and a regex of several ``*`` in one
segment takes exponential time on a long segment (a worker froze on 150 characters). A
glob is split at its stars into blocks of fixed length; the first block must start the
text, the last must end it, and each block in between is placed at its leftmost fit.
Leftmost placement is never worse than any other (it leaves the most room to the blocks
after it), so nothing is ever retried: one pass per block, O(text x glob) at worst. The
same algorithm runs twice: over characters inside a segment (``*`` and ``?``) and over
segments inside a path (``**`` and the segment patterns).
"""

from __future__ import annotations

from collections.abc import Sequence

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


def literal_head(glob: str) -> str | None:
    """The first segment of ``glob`` when it holds no wildcard, else None.

    Rules are indexed by it: a request for ``payments/prod/X`` only looks at the rules whose
    glob starts with ``payments`` plus those that start with a wildcard.
    """
    head = glob.partition("/")[0]
    if "*" in head or "?" in head:
        return None
    return head


def _fits_at(block: str, text: str, at: int) -> bool:
    """True when ``block`` (literal characters and ``?``) matches ``text`` from ``at``;
    the caller has checked that ``text`` is long enough."""
    # A plain loop: all() over a generator costs more on this hot path.
    for offset, char in enumerate(block):  # noqa: SIM110
        if char != "?" and text[at + offset] != char:
            return False
    return True


def _find(block: str, text: str, start: int, stop: int) -> int:
    """The leftmost ``at >= start`` where ``block`` fits inside ``text[:stop]``, or -1."""
    if "?" not in block:
        return text.find(block, start, stop)  # C speed for the common case
    for at in range(start, stop - len(block) + 1):
        if _fits_at(block, text, at):
            return at
    return -1


class _Segment:
    """One glob segment other than ``**``: literal characters, ``*`` and ``?``."""

    __slots__ = ("blocks", "kind", "min_len", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.blocks = text.split("*")
        self.min_len = len(text) - (len(self.blocks) - 1)
        if text == "*":
            self.kind = "any"
        elif "*" not in text and "?" not in text:
            self.kind = "literal"
        else:
            self.kind = "wild"

    def matches(self, segment: str) -> bool:
        """True when the whole of ``segment`` (which holds no ``/``) matches."""
        if self.kind == "literal":
            return segment == self.text
        if self.kind == "any":
            return True
        blocks = self.blocks
        if len(blocks) == 1:  # ``?`` only: a fixed length
            return len(segment) == len(self.text) and _fits_at(self.text, segment, 0)
        if len(segment) < self.min_len:
            return False
        first, last = blocks[0], blocks[-1]
        stop = len(segment) - len(last)
        if not (_fits_at(first, segment, 0) and _fits_at(last, segment, stop)):
            return False
        at = len(first)
        for block in blocks[1:-1]:
            found = _find(block, segment, at, stop)
            if found < 0:
                return False
            at = found + len(block)
        return True


_ANY_SEGMENT = _Segment("*")
_Block = tuple[_Segment, ...]


def _run_fits(block: _Block, parts: Sequence[str], at: int) -> bool:
    """True when each segment pattern of ``block`` matches ``parts`` from ``at`` on."""
    for offset, segment in enumerate(block):
        # The common kinds inline: a method call costs more than their whole test.
        kind = segment.kind
        if kind == "any":
            continue
        if kind == "literal":
            if parts[at + offset] != segment.text:
                return False
        elif not segment.matches(parts[at + offset]):
            return False
    return True


class Glob:
    """A checked glob, compiled for matching whole paths without backtracking.

    ``**`` is to segments what ``*`` is to characters, so the path is matched as a list of
    segments by the same block placement as a segment's characters. A trailing ``**``
    needs at least one segment after its slash: it is compiled as one any-segment
    followed by a ``**``.

    Speed: every match first checks, with C string methods, what any match must have: the
    literal text before the first wildcard and after the last, the other literal pieces
    somewhere, and (without ``**``) the number of slashes. Most globs of a policy set are
    refused there. For the most common shapes (``a/b/*``, ``a/b/ROOT_*``, ``a/*.json/c``:
    one ``*`` in one segment, no ``?`` or ``**``) those checks are the whole answer.
    ``prefix`` (every match starts with it) and ``needle`` (every match contains it) are
    public so that callers holding many globs can screen with them first.
    """

    __slots__ = (
        "_affixes_decide",
        "_blocks",
        "_literal",
        "_min_parts",
        "_needles",
        "_slashes",
        "_suffix",
        "needle",
        "prefix",
        "text",
    )

    def __init__(self, glob: str) -> None:
        check_glob(glob)
        self.text = glob
        blocks: list[list[_Segment]] = [[]]
        segments = glob.split("/")
        for i, segment in enumerate(segments):
            if segment != "**":
                blocks[-1].append(_Segment(segment))
                continue
            if i == len(segments) - 1:
                blocks[-1].append(_ANY_SEGMENT)
            blocks.append([])
        self._blocks: tuple[_Block, ...] = tuple(tuple(b) for b in blocks)
        self._min_parts = sum(len(b) for b in blocks)
        wild = [i for i, char in enumerate(glob) if char in "*?"]
        if not wild:
            self.prefix, self._suffix = glob, ""
        else:
            self.prefix = glob[: wild[0]]
            # Zero segments for a leading or inner ``**`` take its following slash with
            # it (``**/b`` matches ``b``), so that slash is not required.
            tail = glob[wild[-1] + 1 :]
            self._suffix = tail[1:] if glob[: wild[-1] + 1].endswith("**") else tail
        # Without ``**`` a match has exactly the glob's slashes; -1: any number.
        self._slashes = glob.count("/") if len(blocks) == 1 else -1
        wild_segments = [s for s in segments if "*" in s or "?" in s]
        self._literal = not wild
        # The literal pieces of every segment occur somewhere in any matching path: a
        # substring test (C speed) refuses most paths before any segment is compared.
        pieces = {
            piece
            for segment in segments
            if segment != "**"
            for piece in segment.replace("?", "*").split("*")
            if piece and piece not in self.prefix and piece not in self._suffix
        }
        self._needles = tuple(sorted(pieces, key=lambda piece: (-len(piece), piece)))
        self.needle = self._needles[0] if self._needles else ""
        self._affixes_decide = (
            len(blocks) == 1
            and len(wild_segments) == 1
            and "?" not in glob
            and glob.count("*") == 1
        )

    def __repr__(self) -> str:
        return f"Glob({self.text!r})"

    def matches(self, path: str) -> bool:
        """True when ``glob`` matches the whole of ``path``; at worst O(len(path) x len(glob))."""
        if self._literal:
            return path == self.text
        prefix, suffix = self.prefix, self._suffix
        if not (path.startswith(prefix) and path.endswith(suffix)):
            return False
        if self._slashes >= 0 and path.count("/") != self._slashes:
            return False
        for needle in self._needles:
            if needle not in path:
                return False
        if self._affixes_decide:
            # Literal segments are in the prefix and suffix; the one ``*`` lies between them
            # inside its segment (the slash count says so): only their overlap can fail.
            return len(path) >= len(prefix) + len(suffix)
        parts = path.split("/")
        blocks = self._blocks
        if len(blocks) == 1:  # no ``**``: one pattern per segment (the slashes were counted)
            return _run_fits(blocks[0], parts, 0)
        if len(parts) < self._min_parts:
            return False
        first, last = blocks[0], blocks[-1]
        stop = len(parts) - len(last)
        if not (_run_fits(first, parts, 0) and _run_fits(last, parts, stop)):
            return False
        at = len(first)
        for block in blocks[1:-1]:  # leftmost fit of each, in order
            while True:
                if at + len(block) > stop:
                    return False
                if _run_fits(block, parts, at):
                    break
                at += 1
            at += len(block)
        return True


def compile_glob(glob: str) -> Glob:
    """The matcher of ``glob``; raises :class:`GlobError` when the glob is not valid."""
    return Glob(glob)
