"""Landing converted inputs in the store in-process: many per commit, each all-or-nothing.

Before the commit, a :class:`Planner` checks and indexes each input's resources on a guess
of how its identities resolve (see :func:`server.store.transaction.plan_transaction`), so
that the write transaction mostly writes; whatever resolved otherwise is prepared again
inside it, and the outcome is the same as without a plan.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from adapters.common.result import Outcome, Problem
from server.consent.context import AccessContext
from server.fhir.errors import FhirError, NotFound
from server.store.repository import Repository
from server.store.transaction import TransactionPlan, apply_transaction, plan_transaction
from server.store.unit import PreparedResource, UnitOfWork


@dataclass
class Landable:
    key: str
    entries: list[dict[str, Any]]
    must_exist: str | None = None  # conditional URL that must match one resource first
    #: a resource that exists only if exactly this input was landed by exactly this mapping;
    #: finding it means there is nothing to do (and an old message replayed after a newer
    #: one cannot roll the newer one back)
    landed_marker: tuple[str, str] | None = None
    plan: TransactionPlan | None = None


class Planner:
    """Plans inputs for landing; one per run (and per process of a run).

    A new resource gets an id derived from its business identifier with a key made for
    this run alone: every message of the run that names a new patient guesses the same id
    for it, so a batch that holds several of that patient's messages is planned right,
    while the id says nothing about the identifier to anyone without the key (an id
    derived from an NHS number without one could be reversed by trying them all).
    """

    def __init__(self, repo: Repository, key: bytes | None = None) -> None:
        self.repo = repo
        self.key = key or secrets.token_bytes(32)
        self._cache: dict[bytes, PreparedResource] = {}

    def new_id(self, condition: str) -> str:
        digest = hmac.new(self.key, condition.encode(), hashlib.sha256).digest()
        return str(uuid.UUID(bytes=digest[:16], version=4))

    def landed(self, item: Landable) -> bool:
        """Whether the input's marker is in the committed store (nothing to plan then)."""
        if item.landed_marker is None:
            return False
        row = self.repo.reader.current(*item.landed_marker)
        return row is not None and not row.deleted

    def plan(self, item: Landable) -> Landable:
        if not self.landed(item):
            item.plan = plan_transaction(self.repo, item.entries, new_id=self.new_id, cache=self._cache)
        return item


class UnknownTarget(Exception):
    pass


def job(item: Landable) -> Callable[[UnitOfWork], list[dict[str, Any]]]:
    """The write of one input, for a savepoint of ``Repository.run_batch`` (or a group commit)."""
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
        return apply_transaction(u, item.entries, plan=item.plan)
    return run


def outcome(item: Landable, ok: bool, value: Any) -> Outcome:
    """What a job's ``(ok, result or exception)`` means for the input."""
    if ok:
        statuses = [r.get("response", {}).get("status", "") for r in value]
        return Outcome(item.key, True, created=sum(1 for s in statuses if s.startswith("201")))
    if isinstance(value, UnknownTarget):
        return Outcome(item.key, False, [Problem(str(value), "RF1", 1, 6, 0, "204")])
    if isinstance(value, FhirError):
        return Outcome(item.key, False, [Problem(f"the store refused it: {value.diagnostics}")])
    return Outcome(item.key, False, [Problem(f"internal error: {value!r}", code="207", reject=True)])


def land(repo: Repository, items: list[Landable], ctx: AccessContext | None = None) -> list[Outcome]:
    """One commit for all of ``items``; each lands whole or not at all."""
    ctx = ctx or AccessContext.system("carebridge-ingest")
    results = repo.run_batch([(ctx, job(i)) for i in items])
    return [outcome(item, ok, value) for item, (ok, value) in zip(items, results, strict=True)]
