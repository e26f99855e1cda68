"""From raw bytes to landed referrals: convert, then land in batches that share a commit."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice

from adapters.common.landing import land
from adapters.common.result import Outcome
from adapters.gp_referral.convert import Converted, convert
from adapters.gp_referral.mapping import Mapping, load
from server.store.repository import Repository


def _outcome(c: Converted) -> Outcome:
    return Outcome(c.key or c.control_id or "(no control id)", False, list(c.problems))


def ingest(repo: Repository, raws: Iterable[bytes], *, mapping: Mapping | None = None,
           batch_size: int = 200) -> Iterator[tuple[Converted, Outcome]]:
    """Each message's conversion and outcome, in input order; streams ``raws``."""
    mapping = mapping or load()
    it = iter(raws)
    while True:
        chunk = [convert(r, mapping) for r in islice(it, batch_size)]
        if not chunk:
            return
        ready = [c for c in chunk if c.ok]
        landed = iter(land(repo, [c.landable() for c in ready]))
        for c in chunk:
            yield c, (next(landed) if c.ok else _outcome(c))
