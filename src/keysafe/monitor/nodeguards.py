"""The failed-credential throttle's counts shared by the workers of one node, without
Redis (``keysafe.access.throttle``; the node's table is ``nodelimits.NodeStorage``).

Per source address, one fixed-window count of failures (windows aligned to the clock,
like the node's rate limits) summed over the workers. The failure that brings the count
to the limit starts the cooldown (in its worker, for the full cooldown); any later one,
in any worker, is refused, and every worker refuses the address until the window ends.
So at most the limit of failures is answered 401 per window on the node (exact to one
per other worker, as the table is), and, fixed windows' known weakness, up to twice that
across a window boundary. The table never fails: no fallback is needed.
"""

from __future__ import annotations

import math
import time

from limits.storage import Storage


class NodeFailures:
    """``SharedFailures`` over the node's shared table (see the module doc)."""

    def __init__(self, storage: Storage, limit: int, window: float) -> None:
        self._storage = storage
        self._limit = limit
        self._window = max(1, math.ceil(window))

    def failed(self, source: str, limit: int, window: float, cooldown: float) -> tuple[float, bool]:
        """Count one failure of ``source``: (seconds it cools down, started now)."""
        count = self._storage.incr(_key(source), self._window)
        if count < limit:
            return 0.0, False
        if count == limit:
            return cooldown, True
        return self._left(source), False

    def blocked(self, source: str) -> float:
        """Seconds ``source`` is refused on this node (0 when it is not)."""
        if self._storage.get(_key(source)) < self._limit:
            return 0.0
        return self._left(source)

    def _left(self, source: str) -> float:
        return max(1.0, self._storage.get_expiry(_key(source)) - time.time())


def _key(source: str) -> str:
    return f"keysafe:af:{source}"
