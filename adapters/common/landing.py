"""Landing converted inputs in the store in-process: many per commit, each all-or-nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from adapters.common.result import Outcome, Problem
from server.consent.context import AccessContext
from server.fhir.errors import FhirError, NotFound
from server.store.repository import Repository
from server.store.transaction import apply_transaction
from server.store.unit import UnitOfWork


@dataclass
class Landable:
    key: str
    entries: list[dict[str, Any]]
    must_exist: str | None = None  # conditional URL that must match one resource first
    #: a resource that exists only if exactly this input was landed by exactly this mapping;
    #: finding it means there is nothing to do (and an old message replayed after a newer
    #: one cannot roll the newer one back)
    landed_marker: tuple[str, str] | None = None


class UnknownTarget(Exception):
    pass


def _job(item: Landable) -> Callable[[UnitOfWork], list[dict[str, Any]]]:
    def run(u: UnitOfWork) -> list[dict[str, Any]]:
        if item.landed_marker:
            try:
                u.read(*item.landed_marker)
                return []
            except NotFound:
                pass
        if item.must_exist:
            rtype, _, qs = item.must_exist.partition("?")
            query = u.repo.parser.parse([rtype], parse_qsl(qs, keep_blank_values=True), strict=True)
            query.count = 1
            if not u.search(query).matches:
                raise UnknownTarget(f"no referral matches {item.must_exist.split('=', 1)[1]}: "
                                    "a modify, cancel or status update needs the original REF^I12 first")
        return apply_transaction(u, item.entries)
    return run


def land(repo: Repository, items: list[Landable], ctx: AccessContext | None = None) -> list[Outcome]:
    """One commit for all of ``items``; each lands whole or not at all."""
    ctx = ctx or AccessContext.system("carebridge-ingest")
    results = repo.run_batch([(ctx, _job(i)) for i in items])
    out = []
    for item, (ok, value) in zip(items, results, strict=True):
        if ok:
            statuses = [r.get("response", {}).get("status", "") for r in value]
            out.append(Outcome(item.key, True, created=sum(1 for s in statuses if s.startswith("201"))))
        elif isinstance(value, UnknownTarget):
            out.append(Outcome(item.key, False, [Problem(str(value), "RF1", 1, 6, 0, "204")]))
        elif isinstance(value, FhirError):
            out.append(Outcome(item.key, False, [Problem(f"the store refused it: {value.diagnostics}")]))
        else:
            out.append(Outcome(item.key, False, [Problem(f"internal error: {value!r}", code="207", reject=True)]))
    return out
