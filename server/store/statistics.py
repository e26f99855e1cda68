"""What the search planner knows of the store's size: resources per type, counted now and then.

Neither store keeps statistics the planner can read cheaply (SQLite has none without
``ANALYZE``; PostgreSQL's are per table, not per resource type), so the repository counts
the resources of a type when a search first needs the figure and again once it is
``ttl`` seconds old. The figure only steers how a search runs, never what it returns.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Hashable

from sqlalchemy import Connection, func, select

from server.store.schema import resource

#: seconds a count is used for
DEFAULT_TTL = 300.0


class TypeCounts:
    def __init__(self, ttl: float = DEFAULT_TTL) -> None:
        self.ttl = ttl
        self._counted: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def get(self, conn: Connection, resource_type: str) -> int:
        """Resources of ``resource_type`` (deleted ones too), as last counted."""
        now = time.monotonic()
        with self._lock:
            known = self._counted.get(resource_type)
        if known is not None and now - known[0] < self.ttl:
            return known[1]
        n = int(conn.execute(
            select(func.count()).select_from(resource).where(resource.c.resource_type == resource_type)
        ).scalar_one())
        with self._lock:
            self._counted[resource_type] = (now, n)
        return n

    def forget(self) -> None:
        with self._lock:
            self._counted.clear()


class ClauseCounts:
    """Index rows per search clause (capped as counted), kept ``ttl`` seconds for ``size`` clauses.

    A clause such as ``status=active`` or ``code=<LOINC>`` matches tens of thousands of
    rows in a large store and recurs in search after search; counting its rows to choose a
    plan costs more than the search itself, so the count is remembered. A count steers
    the plan only: it is of index rows, whoever asks, and never reaches a response.
    """

    def __init__(self, ttl: float = DEFAULT_TTL, size: int = 4096) -> None:
        self.ttl = ttl
        self.size = size
        self._counted: OrderedDict[Hashable, tuple[float, int, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, cap: int) -> int | None:
        """The count of ``key`` if counted recently up to at least ``cap`` (or exactly)."""
        with self._lock:
            known = self._counted.get(key)
            if known is None:
                return None
            at, n, counted_to = known
            if time.monotonic() - at >= self.ttl:
                del self._counted[key]
                return None
            self._counted.move_to_end(key)
        return n if n < counted_to or counted_to >= cap else None

    def put(self, key: Hashable, n: int, counted_to: int) -> None:
        with self._lock:
            self._counted[key] = (time.monotonic(), n, counted_to)
            self._counted.move_to_end(key)
            while len(self._counted) > self.size:
                self._counted.popitem(last=False)
