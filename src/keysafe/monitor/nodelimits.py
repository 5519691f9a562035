"""``limits`` storages for one node: one process, or the worker processes of one node.

``ProcessStorage`` keeps fixed-window counts in a dictionary. (``limits``' own
``MemoryStorage`` starts a fresh expiry timer thread every 10 ms under steady traffic:
a hundred thread starts a second fighting the event loop for the GIL.)

``NodeStorage``:

``keysafe up`` and ``keysafe server --workers N`` run several uvicorn workers; counts kept
in each worker's memory would let every worker allow the whole limit. This storage keeps
fixed-window counters in one memory-mapped file under the data directory, created empty
by the runner before the workers start.

No lock is shared between processes: a lock held by a worker that the OS deschedules
stalls every other worker's event loop (measured: p99 x3 on a loaded 2-core machine).
Instead the file holds one region per worker; a worker claims a free region at start
(an ``lockf`` lock on its byte range, held for its lifetime and released by the kernel
when it dies), writes only there, and reads every region to sum a key's count. Windows
are aligned to the clock (a 60 s window is each whole minute), so that every worker
counts the same window. A hit first adds to the worker's own count, then reads the sum.
The count is exact to within one hit per other worker, only at the moment the limit is
reached: hits that race there can all read a sum just past the limit (one too few get
through), and because x86 lets a load pass the same core's earlier store (Python has no
memory fence), two of them can each miss the other's newest write (one too many). With
W workers, between limit - (W - 1) and limit + (W - 1) hits get through a window.

A region is a fixed-size open-addressing table: each slot is (64-bit key hash, window
end as unix time, count). A key probes ``_PROBES`` slots from its hash; an expired or
empty slot is reused; when all are live the slot ending first is evicted (a collision
storm can reset someone's count early, never block them). Only the fixed-window calls
(``incr``/``get``/``get_expiry``) are supported: that is the strategy keysafe uses.
"""

from __future__ import annotations

import fcntl
import hashlib
import math
import mmap
import os
import struct
import threading
import time
from pathlib import Path
from typing import Final

from limits.storage import Storage

NODE_LIMITS_ENV: Final = "KEYSAFE_INTERNAL_NODE_LIMITS"
SLOTS: Final = 1 << 14  # per worker
_SLOT = struct.Struct("<QdQ")  # hash, window end, count
_PROBES = 16
_REGION = SLOTS * _SLOT.size
_HINTS_BOUND = 100_000


def prepare_node_file(data_dir: Path, workers: int) -> Path:
    """``create_node_file``, then name it in the environment for the worker processes;
    call in the parent before they start."""
    path = create_node_file(data_dir, workers)
    os.environ[NODE_LIMITS_ENV] = str(path)
    return path


def create_node_file(data_dir: Path, workers: int) -> Path:
    """Create ``<data_dir>/ratelimit.node`` empty (0600) with one region per worker,
    replacing an earlier run's."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = data_dir / "ratelimit.node"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.ftruncate(fd, _REGION * max(workers, 1))
    finally:
        os.close(fd)
    return path


def node_storage_from_env() -> NodeStorage | None:
    """The node's shared storage when the runner prepared one (several workers)."""
    raw = os.environ.get(NODE_LIMITS_ENV)
    return None if not raw else NodeStorage(f"keysafe+node://{raw}")


def _window_end(now: float, expiry: int) -> float:
    """The end of the clock-aligned window of ``expiry`` seconds holding ``now``."""
    return (math.floor(now / expiry) + 1) * expiry if expiry > 0 else now


class ProcessStorage(Storage):
    """Fixed-window counts of this process (clock-aligned windows, no threads)."""

    STORAGE_SCHEME = ["keysafe+process"]  # noqa: RUF012 (limits' storage registry reads it)
    _BOUND = 100_000  # counters kept before expired ones are swept

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **_: str) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions)
        self._counts: dict[str, list[float]] = {}  # key -> [window end, count]
        self._lock = threading.Lock()

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return ValueError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        end = _window_end(now, expiry)
        with self._lock:
            entry = self._counts.get(key)
            if entry is None or entry[0] != end:
                if len(self._counts) >= self._BOUND:
                    self._counts = {k: v for k, v in self._counts.items() if v[0] > now}
                entry = self._counts[key] = [end, 0]
            entry[1] += amount
            return int(entry[1])

    def get(self, key: str) -> int:
        entry = self._counts.get(key)
        return int(entry[1]) if entry is not None and entry[0] > time.time() else 0

    def get_expiry(self, key: str) -> float:
        entry = self._counts.get(key)
        now = time.time()
        return entry[0] if entry is not None and entry[0] > now else now

    def check(self) -> bool:
        return True

    def reset(self) -> int | None:
        with self._lock:
            count = len(self._counts)
            self._counts = {}
        return count

    def clear(self, key: str) -> None:
        with self._lock:
            self._counts.pop(key, None)


def _hash(key: str) -> int:
    # Not Python's hash(): it differs between processes (PYTHONHASHSEED).
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") | 1


class NodeStorage(Storage):
    """Fixed-window counters in a file shared by the processes of one node."""

    STORAGE_SCHEME = ["keysafe+node"]  # noqa: RUF012 (limits' storage registry reads it)

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **_: str) -> None:
        """``uri`` is ``keysafe+node:///path/to/file`` (made by ``create_node_file``).
        Raises OSError when it cannot be opened or every region is taken."""
        super().__init__(uri, wrap_exceptions=wrap_exceptions)
        path = (uri or "").removeprefix("keysafe+node://")
        self._fd = os.open(path, os.O_RDWR)
        size = os.fstat(self._fd).st_size
        if size == 0 or size % _REGION:
            os.close(self._fd)
            raise OSError(f"{path} is not a rate-limit table of this release")
        self._regions = size // _REGION
        self._own = self._claim(path)
        self._map = mmap.mmap(self._fd, size)
        self._lock = threading.Lock()  # threads of this process share the own region
        self._keys: dict[str, tuple[int, list[int]]] = {}

    def _claim(self, path: str) -> int:
        for region in range(self._regions):
            try:
                fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, _REGION, region * _REGION)
            except OSError:
                continue
            return region
        os.close(self._fd)
        raise OSError(f"every region of {path} is held by a live worker")

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return OSError

    def _hashed(self, key: str) -> tuple[int, list[int]]:
        """The key's hash and its slot hints (last offset seen per region, -1: none)."""
        known = self._keys.get(key)
        if known is None:
            if len(self._keys) > _HINTS_BOUND:
                self._keys.clear()
            known = self._keys[key] = (_hash(key), [-1] * self._regions)
        return known

    def _find(
        self, region: int, wanted: int, hints: list[int], now: float
    ) -> tuple[int, float, int, int]:
        """(offset of the key's slot or -1, its window end, its count, offset of the
        slot to take for it) in ``region``."""
        hint = hints[region]
        if hint >= 0:  # where the key was last time: one read instead of a probe
            slot_hash, end, count = _SLOT.unpack_from(self._map, hint)
            if slot_hash == wanted:
                return hint, end, count, hint
        base = region * _REGION
        start = wanted % SLOTS
        free, oldest, oldest_end = -1, base + start * _SLOT.size, math.inf
        for probe in range(_PROBES):
            offset = base + ((start + probe) % SLOTS) * _SLOT.size
            slot_hash, end, count = _SLOT.unpack_from(self._map, offset)
            if slot_hash == wanted:
                hints[region] = offset
                return offset, end, count, offset
            if free < 0 and (slot_hash == 0 or end <= now):
                free = offset
            if slot_hash == 0:
                break  # keys are stored at the first free slot: not further along
            if end < oldest_end:
                oldest, oldest_end = offset, end
        return -1, 0.0, 0, (free if free >= 0 else oldest)

    def _others(self, wanted: int, hints: list[int], now: float, end: float) -> int:
        """The count of the window ending at ``end`` in every other worker's region."""
        total = 0
        for region, hint in enumerate(hints):
            if region == self._own:
                continue
            if hint >= 0:  # the common case, inlined: the key where it was last time
                slot_hash, their_end, count = _SLOT.unpack_from(self._map, hint)
                if slot_hash == wanted:
                    total += count if their_end == end else 0
                    continue
            offset, their_end, count, _ = self._find(region, wanted, hints, now)
            if offset >= 0 and their_end == end:
                total += count
        return total

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        end = _window_end(now, expiry)
        with self._lock:
            known = self._keys.get(key)
            wanted, hints = known if known is not None else self._hashed(key)
            take = hints[self._own]
            slot_hash, mine_end, count = 0, 0.0, 0
            if take >= 0:
                slot_hash, mine_end, count = _SLOT.unpack_from(self._map, take)
            if slot_hash != wanted:  # not where it was: look for it
                _, mine_end, count, take = self._find(self._own, wanted, hints, now)
            if mine_end != end:
                count = 0
            mine: int = count + amount
            _SLOT.pack_into(self._map, take, wanted, end, mine)
            hints[self._own] = take
            if self._regions == 1:
                return mine
            return mine + self._others(wanted, hints, now, end)

    def _current(self, key: str) -> tuple[float, int]:
        """(window end, count summed over the workers) of the key's live window."""
        now = time.time()
        with self._lock:
            wanted, hints = self._hashed(key)
            found = [self._find(region, wanted, hints, now) for region in range(self._regions)]
        best_end, total = 0.0, 0
        for offset, end, count, _ in found:
            if offset >= 0 and end > now:
                if end > best_end:
                    best_end, total = end, 0
                if end == best_end:
                    total += count
        return best_end, total

    def get(self, key: str) -> int:
        return self._current(key)[1]

    def get_expiry(self, key: str) -> float:
        end = self._current(key)[0]
        return end if end > 0 else time.time()

    def check(self) -> bool:
        return not self._map.closed

    def reset(self) -> int | None:
        with self._lock:
            base = self._own * _REGION
            self._map[base : base + _REGION] = bytes(_REGION)
        return None

    def clear(self, key: str) -> None:
        with self._lock:
            wanted, hints = self._hashed(key)
            offset, _, _, _ = self._find(self._own, wanted, hints, time.time())
            if offset >= 0:
                _SLOT.pack_into(self._map, offset, 0, 0.0, 0)

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)  # also releases the region's claim
