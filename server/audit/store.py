"""Where AuditEvents live: a store of their own, beside the clinical one.

The audit store has the same schema and migrations as the main store and is used through
the same :class:`~server.store.repository.Repository`, so AuditEvents are searched with
the same engine (``/fhir/AuditEvent``). On SQLite it is a second file next to the main one
(``carebridge.sqlite`` -> ``carebridge-audit.sqlite``), so that audit batches never take
the clinical store's write lock; on PostgreSQL it is the schema ``carebridge_audit`` of
the same database. ``CAREBRIDGE_AUDIT_DATABASE_URL`` names another store, or ``main`` to
keep AuditEvents in the clinical store itself. See README.md for the figures behind this.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, create_engine, delete, insert, select, text, tuple_

from carebridge.config import Settings
from server.consent.context import AccessContext
from server.definitions.search_parameters import SearchParameterRegistry, default_registry
from server.fhir.dates import now_instant
from server.search.query import SearchQuery
from server.store.engine import make_engine, migrate, normalise_url
from server.store.indexing import build_rows
from server.store.records import SearchPage
from server.store.reindex import check_definitions
from server.store.repository import Repository
from server.store.schema import audit_journal, compartment, resource, resource_version

PG_SCHEMA = "carebridge_audit"
_LOCK_KEY = 0x63626175  # "cbau": one audit-store set-up at a time
MAIN = "main"
#: the audit writer's own access: it only ever creates AuditEvents (journalled or indexed)
WRITER = AccessContext.system("carebridge-audit", "system/AuditEvent.c")


def audit_database_url(settings: Settings, env: dict[str, str] | None = None) -> str:
    """The audit store's URL: ``CAREBRIDGE_AUDIT_DATABASE_URL``, or derived from the main store's."""
    env = dict(os.environ) if env is None else env
    configured = env.get("CAREBRIDGE_AUDIT_DATABASE_URL")
    if configured:
        return settings.database_url if configured == MAIN else configured
    url = settings.database_url
    if url.startswith("sqlite") and "///" in url:
        head, path = url.split("///", 1)
        if path and path != ":memory:":
            stem, dot, ext = path.rpartition(".")
            return f"{head}///{stem}-audit.{ext}" if dot and "/" not in ext else f"{head}///{path}-audit"
        return url
    return url + ("&" if "?" in url else "?") + f"options=-csearch_path%3D{PG_SCHEMA}"


def make_audit_engine(url: str, registry: SearchParameterRegistry | None = None) -> Engine:
    """An engine on the audit store, with its schema made and migrated (and, given a
    registry, its search-parameter state recorded). On PostgreSQL this runs under an
    advisory lock: the workers of one server open the store at the same moment."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = make_engine(url)
        migrate(engine)
        if registry is not None:
            check_definitions(engine, registry)
        return engine
    plain = url.split("?", 1)[0]
    admin = create_engine(plain, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as lock:
            lock.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _LOCK_KEY})
            try:
                if f"search_path%3D{PG_SCHEMA}" in url:
                    lock.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{PG_SCHEMA}"'))
                engine = create_engine(url, pool_size=2, max_overflow=2, pool_pre_ping=True)
                migrate(engine)
                if registry is not None:
                    check_definitions(engine, registry)
            finally:
                lock.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_KEY})
    finally:
        admin.dispose()
    return engine


def open_repository(url: str, registry: SearchParameterRegistry | None = None,
                    base_url: str | None = None, **kw: Any) -> Repository:
    registry = registry or default_registry()
    engine = make_audit_engine(url, registry)
    return AuditRepository(engine, registry, base_url=base_url, **kw)


def patient_accesses(store: Repository, patient_id: str, *, count: int = 100,
                     since: str | None = None) -> list[dict[str, Any]]:
    """Who looked at this patient: the newest ``count`` AuditEvents naming the patient
    (``AuditEvent?patient=Patient/<id>&_sort=-date``, on the indexed ``patient`` parameter)."""
    auditor = AccessContext.system("carebridge-access-report", "system/AuditEvent.rs")
    params = [("patient", f"Patient/{patient_id}"), ("_sort", "-date"), ("_count", str(count))]
    if since:
        params.append(("date", f"ge{since}"))
    page = store.search(auditor, store.parse_search(["AuditEvent"], params, strict=True))
    return [m.resource for m in page.matches]


def same_store(a: str, b: str) -> bool:
    return normalise_url(a) == normalise_url(b)


# -- which patients the resources of a request concern ---------------------------------------------
def compartment_patients(engine: Engine, registry: SearchParameterRegistry,
                         touched: Iterable[tuple[str, str, int | None, int, bool]]) -> dict[tuple[str, str], set[str]]:
    """(type, id) -> the patients whose compartment holds it, from the clinical store's
    ``compartment`` rows; a deleted resource from the version it replaced. One query for
    the live resources and one for the deleted, per batch of requests."""
    out: dict[tuple[str, str], set[str]] = {}
    by_pk: dict[int, tuple[str, str]] = {}
    by_key: set[tuple[str, str]] = set()
    gone: dict[tuple[int, int], tuple[str, str]] = {}
    for rtype, rid, version, pk, deleted in touched:
        key = (rtype, rid)
        if rtype == "Patient":
            out.setdefault(key, set()).add(rid)
            continue
        if deleted:
            if pk and version and version > 1:
                gone[(pk, version - 1)] = key
        elif pk:
            by_pk[pk] = key
        else:
            by_key.add(key)
    with engine.connect() as conn:
        if by_key:
            keys = sorted(by_key)
            for start in range(0, len(keys), 400):
                rows = conn.execute(select(resource.c.pk, resource.c.resource_type, resource.c.id).where(
                    tuple_(resource.c.resource_type, resource.c.id).in_(keys[start:start + 400])))
                for row in rows:
                    by_pk[row.pk] = (row.resource_type, row.id)
        pks = sorted(by_pk)
        for start in range(0, len(pks), 900):
            chunk = pks[start:start + 900]
            rows = conn.execute(select(compartment.c.resource_pk, compartment.c.patient_id)
                                .where(compartment.c.resource_pk.in_(chunk)))
            for row in rows:
                out.setdefault(by_pk[row.resource_pk], set()).add(row.patient_id)
        if gone:
            v = resource_version.c
            rows = conn.execute(select(v.resource_pk, v.version_id, v.content).where(
                tuple_(v.resource_pk, v.version_id).in_(sorted(gone))))
            for row in rows:
                if row.content:
                    patients = build_rows(orjson.loads(row.content), registry).patients
                    out.setdefault(gone[(row.resource_pk, row.version_id)], set()).update(patients)
    return out


def insert_events(store: Repository, ctx: Any, events: list[dict[str, Any]]) -> None:
    """Store a batch of new AuditEvents, indexed, in one transaction."""
    store.policy.require(ctx, "c", "AuditEvent")
    with store.unit(ctx) as u:
        _insert_indexed(store, u.conn, ctx.author, events)


def _insert_indexed(store: Repository, conn: Connection, author: str | None, events: list[dict[str, Any]]) -> None:
    """One multi-row insert per table (resource, resource_version, each index table) for the
    whole batch, as the bulk loader does, instead of a savepoint and a round of inserts per
    event. The events are built by the server, so they are indexed, not re-validated."""
    stamp, micros = now_instant()
    rows, bodies = [], []
    for event in events:
        rid = str(uuid.uuid4())
        meta = dict(event.get("meta") or {}, versionId="1", lastUpdated=stamp)
        body = {"resourceType": "AuditEvent", "id": rid, "meta": meta}
        body.update((k, v) for k, v in event.items() if k not in ("resourceType", "id", "meta"))
        bodies.append(body)
        rows.append({"resource_type": "AuditEvent", "id": rid, "version_id": 1, "last_updated": micros,
                     "deleted": False, "content": orjson.dumps(body)})
    pks = conn.execute(insert(resource).returning(resource.c.pk, sort_by_parameter_order=True),
                       rows).scalars().all()
    tables: dict[str, list[dict[str, Any]]] = {"resource_version": [
        {"resource_pk": pk, "version_id": 1, "resource_type": "AuditEvent", "id": row["id"],
         "last_updated": micros, "method": "POST", "content": row["content"], "author": author}
        for pk, row in zip(pks, rows, strict=True)
    ]}
    for pk, body in zip(pks, bodies, strict=True):
        for name, found in build_rows(body, store.registry, store.base_url).with_key(pk).items():
            tables.setdefault(name, []).extend(found)
    store.writer.insert_rows(conn, tables)


# -- the journal: stored at once, indexed when there is time -----------------------------------------
def journal_events(store: Repository, ctx: Any, events: list[dict[str, Any]]) -> None:
    """Append a batch of AuditEvents to the journal: one row each, no index rows. This is
    all the trail does while requests are being served; :func:`index_journal` turns the
    rows into searchable AuditEvents later. A journal row is as durable as an AuditEvent."""
    store.policy.require(ctx, "c", "AuditEvent")
    with store.unit(ctx) as u:
        u.conn.execute(insert(audit_journal), [{"content": orjson.dumps(e)} for e in events])


def index_journal(store: Repository, *, limit: int | None = None, chunk: int = 500) -> int:
    """Index journalled AuditEvents, oldest first, ``chunk`` per transaction, until the
    journal is empty (or ``limit`` are done); returns how many. Each transaction takes its
    rows off the journal (on PostgreSQL skipping rows another worker is taking) and stores
    them as AuditEvents, so an event is indexed exactly once, whoever gets there first."""
    done = 0
    j = audit_journal.c
    while limit is None or done < limit:
        take = chunk if limit is None else min(chunk, limit - done)
        with store.unit(WRITER) as u:
            oldest = select(j.seq).order_by(j.seq).limit(take)
            if not store.is_sqlite:
                oldest = oldest.with_for_update(skip_locked=True)
            taken = u.conn.execute(delete(audit_journal).where(j.seq.in_(oldest.scalar_subquery()))
                                   .returning(j.seq, j.content)).all()
            if not taken:
                return done
            events = [orjson.loads(row.content) for row in sorted(taken, key=lambda r: r.seq)]
            _insert_indexed(store, u.conn, WRITER.author, events)
        done += len(taken)
    return done


def journal_waiting(store: Repository) -> bool:
    """Whether any journalled AuditEvent is waiting to be indexed (one indexed look-up)."""
    with store.engine.connect() as conn:
        return conn.execute(select(audit_journal.c.seq).limit(1)).first() is not None


class AuditRepository(Repository):
    """The audit store's repository: a search first indexes whatever the journal holds, so
    that every reader (the API, ``$access-report``, ``carebridge audit``) sees every event
    stored, however recently."""

    def search(
        self, ctx: AccessContext, query: SearchQuery, *, offset: int = 0, after: int | list[int] | None = None
    ) -> SearchPage:
        if journal_waiting(self):
            index_journal(self)
        return super().search(ctx, query, offset=offset, after=after)
