"""Set questions about policy path globs: does one glob's language lie inside others',
do two globs share a path? Used by :mod:`keysafe.access.grants` to decide whether a caller
holds what it hands out.

Method (sound and exact up to a size budget): each glob of the syntax documented in
:mod:`keysafe.access.policy_glob` is a regular language, so it is compiled here into a
small nondeterministic automaton over characters (``*`` and ``?`` move on any character
but ``/``; a ``**`` segment on any character, ending in ``/`` unless it is the last
segment). Two characters that no glob names literally behave identically in every
automaton, so the infinite alphabet is partitioned into the literal characters of the
globs involved, ``/``, and one representative of "any other character" (and from each
product state only the literal characters leaving it are tried, besides those two). A breadth-first
search over the product of the automata, each determinised on the fly (sets of states),
finds the shortest path in the intersection of some languages and outside the union of
others, or proves there is none. The search stops past ``limit`` product states and
raises :class:`TooComplex`; callers treat that as "not proven" and refuse.

This module does not match paths (that is ``policy_glob``'s job); it only reasons about
globs, so it never runs on the request path.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from keysafe.access.policy_glob import check_glob

__all__ = [
    "Budget",
    "GlobAutomaton",
    "TooComplex",
    "ends_meet",
    "find_path",
    "glob_automaton",
    "literal_ends",
]

# Edge labels: a literal character, any character but "/", any character.
_LIT, _NONSLASH, _ANY = 0, 1, 2
DEFAULT_LIMIT = 50_000
SEARCH_COST = 200  # budget units of one search before any state (building, set-up)
_State = tuple[frozenset[int], ...]  # one set of states per automaton


class TooComplex(Exception):
    """The search met its size budget before deciding."""


@dataclass(frozen=True, slots=True)
class GlobAutomaton:
    """A nondeterministic automaton: ``eps[s]`` are the epsilon moves of state ``s`` and
    ``edges[s]`` its (label kind, character, target) moves."""

    starts: frozenset[int]
    accepts: frozenset[int]
    eps: tuple[tuple[int, ...], ...]
    edges: tuple[tuple[tuple[int, str, int], ...], ...]

    literals: frozenset[str] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        chars = frozenset(ch for out in self.edges for kind, ch, _ in out if kind == _LIT)
        object.__setattr__(self, "literals", chars)

    def closure(self, states: Iterable[int]) -> frozenset[int]:
        seen = set(states)
        todo = list(seen)
        while todo:
            for nxt in self.eps[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return frozenset(seen)

    def chars_out(self, states: frozenset[int]) -> set[str]:
        """The literal characters on the moves out of ``states``."""
        return {ch for state in states for kind, ch, _ in self.edges[state] if kind == _LIT}

    def step(self, states: frozenset[int], char: str) -> frozenset[int]:
        moved: set[int] = set()
        for state in states:
            for kind, ch, target in self.edges[state]:
                if kind == _ANY or (kind == _NONSLASH and char != "/") or ch == char:
                    moved.add(target)
        return self.closure(moved) if moved else frozenset()


def glob_automaton(glob: str) -> GlobAutomaton:
    """The automaton of a glob (raises ``GlobError`` when the glob is not valid)."""
    check_glob(glob)
    eps: list[list[int]] = [[]]
    edges: list[list[tuple[int, str, int]]] = [[]]

    def new() -> int:
        eps.append([])
        edges.append([])
        return len(eps) - 1

    cur = 0
    segments = glob.split("/")
    last = len(segments) - 1
    for i, segment in enumerate(segments):
        if segment == "**":
            loop = new()
            eps[cur].append(loop)
            edges[loop].append((_ANY, "", loop))
            if i == last:
                cur = loop  # everything after the slash already read, "/" included
            else:
                # Zero or more whole segments, each with its slash.
                nxt = new()
                eps[cur].append(nxt)
                edges[loop].append((_LIT, "/", nxt))
                cur = nxt
            continue
        for char in segment:
            nxt = new()
            if char == "*":
                eps[cur].append(nxt)
                edges[nxt].append((_NONSLASH, "", nxt))
            elif char == "?":
                edges[cur].append((_NONSLASH, "", nxt))
            else:
                edges[cur].append((_LIT, char, nxt))
            cur = nxt
        if i != last:
            nxt = new()
            edges[cur].append((_LIT, "/", nxt))
            cur = nxt
    return GlobAutomaton(
        frozenset({0}),
        frozenset({cur}),
        tuple(tuple(e) for e in eps),
        tuple(tuple(e) for e in edges),
    )


def union(automata: Sequence[GlobAutomaton]) -> GlobAutomaton:
    """One automaton for the union of several (states renumbered side by side)."""
    starts: set[int] = set()
    accepts: set[int] = set()
    eps: list[tuple[int, ...]] = []
    edges: list[tuple[tuple[int, str, int], ...]] = []
    for a in automata:
        base = len(eps)
        starts.update(s + base for s in a.starts)
        accepts.update(s + base for s in a.accepts)
        eps.extend(tuple(t + base for t in out) for out in a.eps)
        edges.extend(tuple((k, c, t + base) for k, c, t in out) for out in a.edges)
    return GlobAutomaton(frozenset(starts), frozenset(accepts), tuple(eps), tuple(edges))


def _other_char(literals: frozenset[str]) -> str:
    """A character no glob names, to stand for every such character."""
    for char in "xyzqabc0123456789_-.":
        if char not in literals:
            return char
    code = 0x100
    while chr(code) in literals:
        code += 1
    return chr(code)


class Budget:
    """Work allowed to a whole decision made of many searches (units: product states
    explored, rule pairs compared, ``SEARCH_COST`` per search, each unit roughly two
    microseconds); :meth:`spend` raises TooComplex past it."""

    def __init__(self, units: int) -> None:
        self.left = units

    def spend(self, units: int) -> None:
        self.left -= units
        if self.left < 0:
            raise TooComplex("the decision's work budget is spent")


def find_path(
    inside: Sequence[GlobAutomaton],
    outside: Sequence[GlobAutomaton] = (),
    *,
    limit: int = DEFAULT_LIMIT,
    budget: Budget | None = None,
) -> str | None:
    """The shortest non-empty path matched by every automaton of ``inside`` and by
    none of ``outside``, or None when there is no such path (no path is empty).
    Raises :class:`TooComplex` when more than ``limit`` product states would have to
    be explored, or when ``budget`` runs out (each state explored costs one unit)."""
    if not inside:
        raise ValueError("find_path needs at least one automaton to be inside")
    if budget is not None:
        budget.spend(SEARCH_COST)
    machines = list(inside)
    if outside:
        machines.append(union(outside))
    n_in = len(inside)
    literals = frozenset().union(*(m.literals for m in machines)) - {"/"}
    other = _other_char(literals)
    start: _State = tuple(m.closure(m.starts) for m in machines)
    # Only states reached by at least one character are recorded: the empty path is
    # never an answer, and a state equal to the start but reached again still counts.
    parents: dict[_State, tuple[_State | None, str]] = {}
    queue: deque[_State | None] = deque([None])
    while queue:
        node = queue.popleft()
        state = start if node is None else node
        if node is not None and _accepting(machines, n_in, state):
            return _spell(parents, node)
        # Characters on no literal move out of this state all behave like ``other``.
        chars = set().union(*(m.chars_out(s) for m, s in zip(machines, state, strict=True)))
        for char in [*sorted(chars - {"/"}), other, "/"]:
            nxt = tuple(m.step(s, char) for m, s in zip(machines, state, strict=True))
            if any(not nxt[i] for i in range(n_in)) or nxt in parents:
                continue  # some "inside" automaton is dead: nothing to find this way
            if len(parents) >= limit:
                raise TooComplex(f"more than {limit} states")
            if budget is not None:
                budget.spend(1)
            parents[nxt] = (node, char)
            queue.append(nxt)
    return None


def _accepting(machines: list[GlobAutomaton], n_in: int, state: _State) -> bool:
    """Every "inside" automaton accepts and the union of the "outside" ones does not."""
    if not all(state[i] & machines[i].accepts for i in range(n_in)):
        return False
    return len(machines) == n_in or not state[n_in] & machines[n_in].accepts


def _spell(parents: dict[_State, tuple[_State | None, str]], state: _State) -> str:
    chars: list[str] = []
    node: _State | None = state
    while node is not None:
        node, char = parents[node]
        chars.append(char)
    return "".join(reversed(chars))


def literal_ends(glob: str) -> tuple[str, str]:
    """The literal prefix (before the first wildcard) and suffix (after the last) that
    every path ``glob`` matches starts and ends with."""
    first = min((i for i in (glob.find("*"), glob.find("?")) if i >= 0), default=len(glob))
    last = max(glob.rfind("*"), glob.rfind("?"))
    if last < 0:
        return glob, glob
    suffix = glob[last + 1 :]
    if glob[last - 1 : last + 1] == "**" and suffix.startswith("/"):
        suffix = suffix[1:]  # "a/**/b" matches "a/b": the slash before b is not certain
    return glob[:first], suffix


def ends_meet(a: tuple[str, str], b: tuple[str, str]) -> bool:
    """A cheap necessary condition for two globs (given by :func:`literal_ends`) to
    share a path: prefixes and suffixes agree. False: they share none; True: maybe."""
    (pa, sa), (pb, sb) = a, b
    return (pa.startswith(pb) or pb.startswith(pa)) and (sa.endswith(sb) or sb.endswith(sa))
