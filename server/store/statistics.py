"""What the search planner knows of the store's size, counted now and then.

Neither store keeps statistics the planner can read cheaply (SQLite has none without
``ANALYZE``; PostgreSQL's are per table, not per resource type or search clause), so the
repository counts what a plan needs (the resources of a type, the index rows of a clause
such as ``status=active``, which recurs in search after search and costs more to count
than the search itself) and remembers each count for ``ttl`` seconds. A count steers how a
search runs only: it is of rows, whoever asks, and never reaches a response.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

#: seconds a count is used for
DEFAULT_TTL = 300.0


class PlanCounts:
    """Counts by key, each either exact or capped where counting stopped; the newest ``size``
    kept for ``ttl`` seconds."""

    def __init__(self, ttl: float = DEFAULT_TTL, size: int = 4096) -> None:
        self.ttl = ttl
        self.size = size
        #: key -> (when, count, where counting stopped or None when exact)
        self._counted: OrderedDict[Hashable, tuple[float, int, int | None]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, cap: int | None = None) -> int | None:
        """The remembered count of ``key``, if it is exact or was counted up to ``cap`` or beyond."""
        with self._lock:
            known = self._counted.get(key)
            if known is None:
                return None
            at, n, counted_to = known
            if time.monotonic() - at >= self.ttl:
                del self._counted[key]
                return None
            self._counted.move_to_end(key)
        if counted_to is None or n < counted_to or (cap is not None and counted_to >= cap):
            return n
        return None

    def put(self, key: Hashable, n: int, counted_to: int | None = None) -> None:
        with self._lock:
            self._counted[key] = (time.monotonic(), n, counted_to)
            self._counted.move_to_end(key)
            while len(self._counted) > self.size:
                self._counted.popitem(last=False)

    def count(self, key: Hashable, counter: Callable[[int | None], int], cap: int | None = None) -> int:
        """``key``'s count, remembered or from ``counter(cap)`` (which counts up to ``cap``)."""
        known = self.get(key, cap)
        if known is not None:
            return known if cap is None else min(known, cap)
        n = counter(cap)
        self.put(key, n, cap)
        return n
