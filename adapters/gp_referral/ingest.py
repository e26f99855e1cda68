"""From raw bytes to landed referrals: convert and plan, then land in batches that share a commit.

Converting a message and checking and indexing its resources (the plan, see
:class:`~adapters.common.landing.Planner`) need no write lock, and they are most of the
CPU; with ``workers`` they run in that many processes while this one writes. A batch of
messages lands in one database transaction, each message in a savepoint of its own, so a
bad message rolls back alone; nothing is reported before its batch has committed.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import replace
from itertools import islice

import orjson

from adapters.common.landing import Planner, land
from adapters.common.result import Outcome
from adapters.gp_referral.convert import Converted, convert
from adapters.gp_referral.mapping import Mapping, load
from carebridge import heap
from server.store.repository import Repository
from server.store.transaction import TransactionPlan

#: messages handed to a worker at a time
CHUNK = 20


def _outcome(c: Converted) -> Outcome:
    return Outcome(c.key or c.control_id or "(no control id)", False, list(c.problems))


def prepare(raw: bytes, mapping: Mapping, planner: Planner) -> Converted:
    """One message converted and, when it converted cleanly, planned."""
    c = convert(raw, mapping)
    if c.ok:
        c.planned = planner.plan(c.landable())
    return c


# -- worker processes -------------------------------------------------------------------------
_worker: tuple[Mapping, Planner] | None = None
#: a converted message on its way between processes: the small parts pickled, the Bundle
#: and its plan as JSON (pickle spends milliseconds on a plan's hundred-odd index rows)
Packed = tuple[Converted, bytes | None]


def start_worker(repo: Repository, mapping: Mapping, key: bytes) -> None:
    global _worker
    repo.engine.dispose(close=False)  # the parent's pooled connections are not this process's
    _worker = (mapping, Planner(repo, key))
    heap.settle()


def pack(c: Converted, keep_message: bool = False) -> Packed:
    blob = None
    if c.bundle is not None:
        plan = c.planned.plan if c.planned is not None else None
        blob = orjson.dumps({"entries": c.bundle["entry"], "plan": plan.to_json() if plan is not None else None})
    keep = keep_message or not c.ok  # a rejected message keeps what its ACK needs
    slim = replace(c, raw=b"", bundle=None, planned=None, message=c.message if keep else None,
                   control=c.control_id)
    return slim, blob


def unpack(packed: Packed) -> Converted:
    c, blob = packed
    if blob is not None:
        data = orjson.loads(blob)
        c.bundle = {"resourceType": "Bundle", "type": "transaction", "entry": data["entries"]}
        c.planned = c.landable()
        if data["plan"] is not None:
            c.planned.plan = TransactionPlan.from_json(data["plan"])
    return c


def prepare_chunk(raws: list[bytes], keep_message: bool = False) -> list[Packed]:
    assert _worker is not None
    mapping, planner = _worker
    return [pack(prepare(r, mapping, planner), keep_message) for r in raws]


def default_workers() -> int:
    """One worker per core beside the writing process; none on a single core."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cores if cores > 1 else 0


def _prepared(repo: Repository, raws: Iterable[bytes], mapping: Mapping, workers: int,
              window: int) -> Iterator[Converted]:
    """Converted, planned messages in input order; at most ``window`` in flight."""
    planner = Planner(repo)
    it = iter(raws)
    if workers <= 0:
        for raw in it:
            yield prepare(raw, mapping, planner)
        return
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=start_worker,
                             initargs=(repo, mapping, planner.key)) as pool:
        pending: deque[Future[list[Packed]]] = deque()
        while True:
            while len(pending) * CHUNK < window:
                chunk = list(islice(it, CHUNK))
                if not chunk:
                    break
                pending.append(pool.submit(prepare_chunk, chunk))
            if not pending:
                return
            for packed in pending.popleft().result():
                yield unpack(packed)


def ingest(repo: Repository, raws: Iterable[bytes], *, mapping: Mapping | None = None,
           batch_size: int = 200, workers: int = 0) -> Iterator[tuple[Converted, Outcome]]:
    """Each message's conversion and outcome, in input order; streams ``raws``.

    With ``workers``, the conversion of a message that converted cleanly comes back without
    its raw bytes and parsed message (key and control id are kept)."""
    mapping = mapping or load()
    stream = _prepared(repo, raws, mapping, workers, window=2 * batch_size + workers * CHUNK)
    while True:
        chunk = list(islice(stream, batch_size))
        if not chunk:
            return
        ready = [c for c in chunk if c.ok]
        landed = iter(land(repo, [c.planned or c.landable() for c in ready]))
        for c in chunk:
            yield c, (next(landed) if c.ok else _outcome(c))
