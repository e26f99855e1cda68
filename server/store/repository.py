"""The repository: the one interface through which resources are written, read and found.

Every call carries an :class:`AccessContext`. Visibility is not checked after the fact:
:class:`~server.consent.policy.AccessPolicy` describes what the caller may see and the
unit of work compiles that into the SQL of every query, so that a hidden resource is
never read, counted, paged, included or listed in history.

:class:`Repository` opens one database transaction per call; :meth:`Repository.unit`
hands out a :class:`~server.store.unit.UnitOfWork` when several operations must commit
together (a transaction Bundle, an ingest message).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Engine

from server.consent.context import AccessContext
from server.consent.policy import AccessPolicy
from server.definitions.search_parameters import SearchParameterRegistry
from server.fhir.errors import Gone, NotFound
from server.search.query import QueryParser, SearchQuery
from server.store.engine import write_connection
from server.store.hooks import WriteHooks, default_hooks
from server.store.reader import RowReader
from server.store.records import HistoryPage, SearchPage, StoredResource, WriteOutcome
from server.store.statistics import PlanCounts
from server.store.unit import UnitOfWork, prepare
from server.store.writer import RowWriter
from server.validation.resource import ResourceValidator

T = TypeVar("T")


class Repository:
    def __init__(
        self,
        engine: Engine,
        registry: SearchParameterRegistry,
        *,
        policy: AccessPolicy | None = None,
        validator: ResourceValidator | None = None,
        base_url: str | None = None,
        default_page_size: int = 50,
        max_page_size: int = 1000,
        hooks: WriteHooks | None = None,
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.policy = policy or AccessPolicy()
        self.validator = validator or ResourceValidator()
        self.base_url = base_url
        self.parser = QueryParser(registry, default_page_size, max_page_size)
        self.is_sqlite = engine.dialect.name == "sqlite"
        self.writer = RowWriter(engine.dialect)
        self.reader = RowReader(engine)
        #: resources per type and index rows per clause, for the search planner
        self.plan_counts = PlanCounts()
        #: derivations written in the same transaction as their source (server/store/hooks.py)
        self.hooks = hooks if hooks is not None else default_hooks()

    @contextmanager
    def unit(self, ctx: AccessContext, *, write: bool = True) -> Iterator[UnitOfWork]:
        """One database transaction: committed when the block ends, rolled back on error."""
        with write_connection(self.engine) if write else self.engine.connect() as conn, conn.begin():
            yield UnitOfWork(self, conn, ctx)

    def run_batch(self, jobs: list[tuple[AccessContext, Callable[[UnitOfWork], Any]]]) -> list[tuple[bool, Any]]:
        """Run several independent writes in one transaction, each in a savepoint of its own.

        Returns ``(True, result)`` or ``(False, exception)`` per job; a failed job leaves no
        trace and does not disturb the others. Raises if the shared commit fails.
        """
        outcomes: list[tuple[bool, Any]] = []
        with write_connection(self.engine) as conn, conn.begin():
            # plain SAVEPOINT statements on the driver: the same SQL SQLAlchemy would
            # send, without its bookkeeping on the hot path
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                for ctx, fn in jobs:
                    cursor.execute("SAVEPOINT cb_write")
                    try:
                        result = fn(UnitOfWork(self, conn, ctx))
                    except Exception as exc:
                        cursor.execute("ROLLBACK TO SAVEPOINT cb_write")
                        cursor.execute("RELEASE SAVEPOINT cb_write")
                        outcomes.append((False, exc))
                    else:
                        cursor.execute("RELEASE SAVEPOINT cb_write")
                        outcomes.append((True, result))
            finally:
                cursor.close()
        return outcomes

    def _run(self, ctx: AccessContext, fn: Callable[[UnitOfWork], T], write: bool) -> T:
        with self.unit(ctx, write=write) as u:
            return fn(u)

    def write(self, ctx: AccessContext, fn: Callable[[UnitOfWork], T]) -> T:
        """Run ``fn`` in a write transaction of its own."""
        return self._run(ctx, fn, True)

    # -- the interactions ----------------------------------------------------------------
    def create(self, ctx: AccessContext, resource: dict[str, Any], if_none_exist: str | None = None) -> WriteOutcome:
        prepared = prepare(self, resource)  # before the write lock: see PreparedResource
        return self._run(ctx, lambda u: u.create(resource, if_none_exist=if_none_exist, prepared=prepared), True)

    def read(self, ctx: AccessContext, resource_type: str, id: str) -> StoredResource:
        """The current version; 404 when missing or hidden from the caller, 410 when deleted.

        The lookup runs on the driver (see :mod:`server.store.reader`); a caller whose
        visibility of the type is restricted has the row checked against the same SQL
        predicate that every search of theirs carries, so a hidden resource answers
        exactly like a missing one.
        """
        self.policy.require(ctx, "r", resource_type)
        row = self.reader.current(resource_type, id)
        if row is not None and not self.policy.visibility(ctx, resource_type).everything:
            pk = row.pk
            if not self._run(ctx, lambda u: u.is_visible(resource_type, pk), False):
                row = None
        if row is None:
            raise NotFound(f"{resource_type}/{id} is not known")
        if row.deleted:
            raise Gone(f"{resource_type}/{id} has been deleted")
        return StoredResource(resource_type, id, row.version_id, row.last_updated, row.content, False, pk=row.pk)

    def vread(self, ctx: AccessContext, resource_type: str, id: str, version_id: str) -> StoredResource:
        return self._run(ctx, lambda u: u.vread(resource_type, id, version_id), False)

    def update(
        self, ctx: AccessContext, resource_type: str, id: str, resource: dict[str, Any], if_match: str | None = None
    ) -> WriteOutcome:
        prepared = prepare(self, resource, resource_type)
        return self._run(
            ctx, lambda u: u.update(resource_type, id, resource, if_match=if_match, prepared=prepared), True
        )

    def conditional_update(
        self, ctx: AccessContext, resource_type: str, query: list[tuple[str, str]], resource: dict[str, Any]
    ) -> WriteOutcome:
        return self._run(ctx, lambda u: u.conditional_update(resource_type, query, resource), True)

    def patch(
        self, ctx: AccessContext, resource_type: str, id: str, operations: list[dict[str, Any]],
        if_match: str | None = None,
    ) -> WriteOutcome:
        return self._run(ctx, lambda u: u.patch(resource_type, id, operations, if_match=if_match), True)

    def delete(self, ctx: AccessContext, resource_type: str, id: str) -> StoredResource | None:
        return self._run(ctx, lambda u: u.delete(resource_type, id), True)

    def conditional_delete(self, ctx: AccessContext, resource_type: str, query: list[tuple[str, str]]) -> int:
        return self._run(ctx, lambda u: u.conditional_delete(resource_type, query), True)

    def history(
        self, ctx: AccessContext, resource_type: str | None = None, id: str | None = None, *,
        since: str | None = None, at: str | None = None, count: int = 50, offset: int = 0,
        before: tuple[int, int, int] | None = None,
    ) -> HistoryPage:
        return self._run(
            ctx, lambda u: u.history(resource_type, id, since=since, at=at, count=count, offset=offset, before=before),
            False,
        )

    def parse_search(
        self, resource_types: list[str], params: list[tuple[str, str]], strict: bool = False
    ) -> SearchQuery:
        return self.parser.parse(resource_types, params, strict=strict)

    def search(
        self, ctx: AccessContext, query: SearchQuery, *, offset: int = 0, after: int | list[int] | None = None
    ) -> SearchPage:
        return self._run(ctx, lambda u: u.search(query, offset=offset, after=after), False)

    def everything(
        self, ctx: AccessContext, patient_id: str, *, count: int = 50, after: int | None = None,
        since: str | None = None,
    ) -> SearchPage:
        return self._run(ctx, lambda u: u.everything(patient_id, count=count, after=after, since=since), False)

    def transaction(self, ctx: AccessContext, entries: list[Any], base: str = "") -> list[dict[str, Any]]:
        """Process a transaction Bundle's entries atomically; returns the response entries."""
        from server.store.transaction import run_transaction

        return run_transaction(self, ctx, entries, base)

    def batch(self, ctx: AccessContext, entries: list[Any], base: str = "") -> list[dict[str, Any]]:
        """Process a batch Bundle's entries one by one; a failing entry answers with its outcome."""
        from server.store.transaction import run_batch

        return run_batch(self, ctx, entries, base)
