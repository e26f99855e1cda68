"""Rebuilding search index rows when a SearchParameter's definition changes.

The store records, per parameter, a hash of the expression it was indexed with
(``search_param_state``). ``carebridge reindex`` compares those with the definitions the
server now loads, rebuilds the rows of the changed parameters only (or all with
``--all``), resource by resource in batches, and records the new hashes.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

import orjson
from sqlalchemy import Connection, Engine, delete, false, insert, select
from sqlalchemy.exc import IntegrityError

from carebridge.config import Settings
from server.definitions.search_parameters import SearchParam, SearchParameterRegistry, default_registry
from server.store.engine import make_engine, migrate, write_connection
from server.store.indexing import build_rows
from server.store.schema import INDEX_TABLES, compartment, compartment_outside, resource, search_param_state

log = logging.getLogger("carebridge.store")
_TABLES = {t.name: t for t in (*INDEX_TABLES.values(), compartment, compartment_outside)}


def stale_params(conn: Connection, registry: SearchParameterRegistry) -> list[SearchParam]:
    """Indexed parameters whose recorded hash differs from (or is missing for) the current one."""
    recorded = {r.param_id: r.expression_hash for r in conn.execute(select(search_param_state))}
    return [p for p in registry.all_indexed() if recorded.get(p.param_id) != p.expression_hash]


def record(conn: Connection, params: Iterable[SearchParam]) -> None:
    params = list(params)
    if not params:
        return
    conn.execute(delete(search_param_state).where(search_param_state.c.param_id.in_([p.param_id for p in params])))
    conn.execute(insert(search_param_state), [
        {"param_id": p.param_id, "resource_type": p.resource_type, "code": p.code, "expression_hash": p.expression_hash}
        for p in params
    ])


def check_definitions(engine: Engine, registry: SearchParameterRegistry) -> list[SearchParam]:
    """At start-up: an empty store takes the current definitions as its own; otherwise the
    parameters whose index rows were built from other definitions are returned (and logged).

    Several server workers start at once on a new store: when another one records the
    definitions first, this one's insert collides with its rows, and reading them again
    finds nothing left to record."""
    for attempt in range(2):
        try:
            with write_connection(engine) as conn, conn.begin():  # read and record under the write lock
                stale = stale_params(conn, registry)
                if stale and conn.execute(select(resource.c.pk).limit(1)).first() is None:
                    record(conn, stale)
                    return []
            break
        except IntegrityError:
            if attempt:
                raise
    if stale:
        log.warning("%d search parameters changed since the store was indexed; run `carebridge reindex`: %s",
                    len(stale), ", ".join(f"{p.resource_type}.{p.code}" for p in stale[:10]))
    return stale


def reindex_params(
    conn: Connection, registry: SearchParameterRegistry, params: list[SearchParam], base_url: str | None,
    batch_size: int = 2000,
) -> int:
    """Rebuild the index rows of ``params`` for every current resource of their types."""
    by_type: dict[str, set[int]] = {}
    for p in params:
        by_type.setdefault(p.resource_type, set()).add(p.param_id)
    done = 0
    for rtype, ids in by_type.items():
        last = 0
        full = {p.param_id for p in registry.indexed_for(rtype)} <= ids
        while True:
            rows = conn.execute(
                select(resource.c.pk, resource.c.content)
                .where(resource.c.resource_type == rtype, resource.c.deleted == false(), resource.c.pk > last)
                .order_by(resource.c.pk).limit(batch_size)
            ).all()
            if not rows:
                break
            pks = [r.pk for r in rows]
            for table in INDEX_TABLES.values():
                conn.execute(delete(table).where(table.c.resource_pk.in_(pks), table.c.param_id.in_(ids)))
            if full:
                conn.execute(delete(compartment).where(compartment.c.resource_pk.in_(pks)))
                conn.execute(delete(compartment_outside).where(compartment_outside.c.resource_pk.in_(pks)))
            tables: dict[str, list[dict[str, object]]] = {}
            for r in rows:
                body = orjson.loads(r.content)
                built = build_rows(body, registry, base_url)
                for name, found in built.with_key(r.pk, body.get("id") if rtype == "Patient" else None).items():
                    if name in ("consent_rule", "consent_term"):
                        continue  # derived from the Consent itself, not from search parameters
                    if name in ("compartment", "compartment_outside"):
                        if full:
                            tables.setdefault(name, []).extend(found)
                        continue
                    tables.setdefault(name, []).extend(x for x in found if x["param_id"] in ids)
            for name, found in tables.items():
                if found:
                    conn.execute(insert(_TABLES[name]), found)
            done += len(rows)
            last = pks[-1]
    return done


def reindex(settings: Settings, *, all_params: bool = False, resource_type: str | None = None) -> int:
    engine = make_engine(settings.database_url)
    migrate(engine)
    registry = default_registry()
    with engine.begin() as conn:
        params = registry.all_indexed() if all_params else stale_params(conn, registry)
        if resource_type:
            params = [p for p in params if p.resource_type == resource_type]
        if not params:
            print("reindex: every search parameter is up to date")
            return 0
        if conn.execute(select(resource.c.pk).limit(1)).first() is None:
            record(conn, params)
            print("reindex: the store is empty; its definitions are recorded")
            return 0
        count = reindex_params(conn, registry, params, settings.fhir_base_url)
        record(conn, params)
    print(f"reindex: {len(params)} search parameters rebuilt over {count} resources", file=sys.stdout)
    return 0
