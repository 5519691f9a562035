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
import hmac
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

ENV_VAR = "KEYSAFE_REDACT"
_FORMAT = "ksr1"  # the env var's format version: only ever add new ones
MIN_LENGTH = 4  # shorter values ("1", "true") would redact ordinary words
DIGEST_SIZE = 16


@dataclass(frozen=True, slots=True)
class Known:
    path: str
    length: int
    # True when the value has characters a tokenizer splits on: found by sliding windows.
    spaced: bool


class Registry:
    """Keyed digests of values, by digest; thread-safe."""

    def __init__(self, key: bytes | None = None) -> None:
        self.key = key if key is not None else os.urandom(16)
        self._lock = threading.Lock()
        self._known: dict[bytes, Known] = {}
        self.lengths: frozenset[int] = frozenset()
        self.spaced_lengths: frozenset[int] = frozenset()

    def digest(self, text: str) -> bytes:
        return hashlib.blake2b(text.encode(), key=self.key, digest_size=DIGEST_SIZE).digest()

    def remember(self, path: str, value: str) -> None:
        """Record ``value`` (read from ``path``); values under MIN_LENGTH are ignored."""
        if len(value) < MIN_LENGTH:
            return
        from keysafe.redact.tokens import has_separator

        self.add(self.digest(value), Known(path, len(value), has_separator(value)))

    def add(self, digest: bytes, known: Known) -> None:
        with self._lock:
            self._known[digest] = known
            self.lengths = self.lengths | {known.length}
            if known.spaced:
                self.spaced_lengths = self.spaced_lengths | {known.length}

    def lookup(self, text: str) -> Known | None:
        """The record of ``text`` when it is a remembered value."""
        if len(text) not in self.lengths:
            return None
        return self._known.get(self.digest(text))

    def __len__(self) -> int:
        return len(self._known)

    def export(self) -> str:
        """The registry as ``KEYSAFE_REDACT`` text: key, then length/flag/digest/path."""
        with self._lock:
            items = list(self._known.items())
        rows = [f"{k.length}:{int(k.spaced)}:{d.hex()}:{k.path}" for d, k in items]
        return ";".join([f"{_FORMAT}:{self.key.hex()}", *rows])

    @classmethod
    def from_env(cls, text: str) -> Registry | None:
        """The registry a parent exported, or None when ``text`` is not one."""
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
            except ValueError:
                continue
            registry.add(digest, Known(parts[3], int(parts[0]), parts[1] == "1"))
        return registry


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


def constant_time_equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)
