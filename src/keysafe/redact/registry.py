"""Which values this process received from keysafe, kept as keyed digests only.

A log filter cannot be handed the secrets themselves (it would become one more place
that holds them), so the SDK records a keyed BLAKE2b digest of each value it reads,
with its path and length; a log line is checked by hashing its candidate substrings of
those lengths. ``keysafe run`` hands the digests (never the values) to its child in
``KEYSAFE_REDACT`` so that the child's logs are redacted the same way.

One registry per process: logging filters are process-wide and every SDK client in the
process must feed the same one. The key is random per registry; a child reuses its
parent's key from ``KEYSAFE_REDACT``.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

ENV_VAR = "KEYSAFE_REDACT"
_FORMAT = "ksr1"  # the env var's format version: only ever add new ones
MIN_LENGTH = 4  # shorter values ("1", "true") would redact ordinary words
DIGEST_SIZE = 16
# Bounds: a long-running service reads rotated values for ever; and Linux refuses to
# start a program when one environment string exceeds 128 KiB.
MAX_ENTRIES = 10_000
MAX_EXPORT = 100 * 1024


@dataclass(frozen=True, slots=True)
class Known:
    path: str
    length: int
    # For a value with delimiters inside ("a b", "k=v"): the keyed digest and length of
    # its first token, where a search for it starts. None for one-token values.
    head: tuple[int, bytes] | None = None

    @property
    def spaced(self) -> bool:
        return self.head is not None


class Registry:
    """Keyed digests of values, by digest; thread-safe."""

    def __init__(self, key: bytes | None = None) -> None:
        self.key = key if key is not None else os.urandom(16)
        self._lock = threading.Lock()
        self._known: dict[bytes, Known] = {}
        self.lengths: frozenset[int] = frozenset()  # of one-token values
        self.head_lengths: frozenset[int] = frozenset()
        self._heads: dict[bytes, frozenset[int]] = {}  # head digest -> value lengths

    def digest(self, text: str) -> bytes:
        return hashlib.blake2b(text.encode(), key=self.key, digest_size=DIGEST_SIZE).digest()

    def remember(self, path: str, value: str) -> None:
        """Record ``value`` (read from ``path``); values under MIN_LENGTH are ignored."""
        if len(value) < MIN_LENGTH:
            return
        from keysafe.redact.tokens import first_token

        head = first_token(value)
        known = Known(path, len(value), None if head == value else (len(head), self.digest(head)))
        self.add(self.digest(value), known)

    def add(self, digest: bytes, known: Known) -> None:
        with self._lock:
            self._known.pop(digest, None)  # re-inserted last: the newest is kept longest
            self._known[digest] = known
            while len(self._known) > MAX_ENTRIES:
                del self._known[next(iter(self._known))]
            if known.head is None:
                self.lengths = self.lengths | {known.length}
                return
            head_length, head_digest = known.head
            self.head_lengths = self.head_lengths | {head_length}
            self._heads[head_digest] = self._heads.get(head_digest, frozenset()) | {known.length}

    def lookup(self, text: str) -> Known | None:
        """The record of ``text`` when it is a remembered value."""
        return self._known.get(self.digest(text))

    def spaced_lengths(self, head: str) -> frozenset[int]:
        """Lengths of the remembered multi-token values that begin with token ``head``."""
        return self._heads.get(self.digest(head), frozenset())

    def __len__(self) -> int:
        return len(self._known)

    def export(self) -> str:
        """The registry as ``KEYSAFE_REDACT`` text: the key, then one row per value
        (``length:head:digest:path``, head ``-`` or ``<length>.<digest>``)."""
        with self._lock:
            items = list(self._known.items())
        head = f"{_FORMAT}:{self.key.hex()}"
        rows: list[str] = []
        size = len(head)
        for digest, known in reversed(items):  # the newest first, up to MAX_EXPORT
            row = f"{known.length}:{_head_text(known)}:{digest.hex()}:{known.path}"
            size += len(row) + 1
            if size > MAX_EXPORT:
                break
            rows.append(row)
        return ";".join([head, *reversed(rows)])

    @classmethod
    def from_env(cls, text: str) -> Registry | None:
        """The registry a parent exported, or None when ``text`` is not one; malformed
        rows are skipped."""
        head, _, rest = text.partition(";")
        fmt, _, key_hex = head.partition(":")
        if fmt != _FORMAT:
            return None
        try:
            registry = cls(bytes.fromhex(key_hex))
        except ValueError:
            return None
        for row in rest.split(";") if rest else []:
            parts = row.split(":", 3)
            if len(parts) != 4 or not parts[0].isdigit():
                continue
            try:
                digest = bytes.fromhex(parts[2])
                known = Known(parts[3], int(parts[0]), _parse_head(parts[1]))
            except ValueError:
                continue
            registry.add(digest, known)
        return registry


def _head_text(known: Known) -> str:
    if known.head is None:
        return "-"
    return f"{known.head[0]}.{known.head[1].hex()}"


def _parse_head(text: str) -> tuple[int, bytes] | None:
    if text == "-":
        return None
    length, _, digest = text.partition(".")
    if not length.isdigit():
        raise ValueError(text)
    return int(length), bytes.fromhex(digest)


_lock = threading.Lock()

_process: Registry | None = None


def process_registry(environ: Mapping[str, str] | None = None) -> Registry:
    """This process's registry; the first call adopts a parent's ``KEYSAFE_REDACT``."""
    global _process
    with _lock:
        if _process is None:
            env = os.environ if environ is None else environ
            inherited = Registry.from_env(env.get(ENV_VAR, ""))
            _process = inherited if inherited is not None else Registry()
        return _process


def remember(path: str, value: str) -> None:
    """Record a value this process received from keysafe (the SDK calls this)."""
    process_registry().remember(path, value)


def remember_all(items: Iterable[tuple[str, str]]) -> Registry:
    registry = process_registry()
    for path, value in items:
        registry.remember(path, value)
    return registry


def child_env() -> dict[str, str]:
    """The variable that hands this process's digests to a child (``keysafe run``)."""
    return {ENV_VAR: process_registry().export()}
