"""Bulk load of FHIR NDJSON: the way to fill a store with millions of resources.

Lines are streamed (memory stays flat however large the file), validated one by one, and
written in batches: one transaction and one multi-row insert per table per batch. Ids in
the file are kept, so that references between exported resources still resolve; a line
whose id already exists becomes an update. A bad line is reported with its file and line
number and skipped; the rest of the batch still lands.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, insert, select

from carebridge import heap
from carebridge.config import Settings
from server.consent.context import AccessContext
from server.definitions.search_parameters import RESOURCE_TYPES, default_registry
from server.fhir.dates import now_instant
from server.fhir.errors import FhirError
from server.store.checkpoint import start_background_checkpoints, stop_background_checkpoints
from server.store.engine import make_engine, migrate
from server.store.indexing import build_rows
from server.store.reindex import check_definitions
from server.store.repository import Repository
from server.store.schema import metadata, resource, resource_version
from server.store.unit import ID_PATTERN


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    rejected: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.created + self.updated


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as fh:
        for number, line in enumerate(fh, 1):
            line = line.strip()
            if line:
                yield number, line


class BulkLoader:
    def __init__(self, repository: Repository, ctx: AccessContext | None = None):
        self.repo = repository
        self.ctx = ctx or AccessContext.system("carebridge-import")

    def load_batch(self, batch: list[tuple[str, dict[str, Any]]], report: ImportReport) -> None:
        """Validate and write one batch; ``batch`` holds (location, resource) pairs."""
        good: list[tuple[str, dict[str, Any]]] = []
        for where, res in batch:
            try:
                rtype = res.get("resourceType") if isinstance(res, dict) else None
                if rtype not in RESOURCE_TYPES:
                    raise FhirError(f"resource type {rtype!r} is not served here")
                if res.get("id") is not None and not ID_PATTERN.match(str(res["id"])):
                    raise FhirError(f"{res['id']!r} is not a valid FHIR id")
                self.repo.validator.validate(res)
                good.append((where, res))
            except FhirError as exc:
                report.rejected.append(f"{where}: {exc.diagnostics}")
        if not good:
            return
        with self.repo.unit(self.ctx) as u:
            conn = u.conn
            by_type: dict[str, list[str]] = {}
            for _, res in good:
                if res.get("id"):
                    by_type.setdefault(res["resourceType"], []).append(res["id"])
            existing: set[tuple[str, str]] = set()
            for rtype, ids in by_type.items():
                rows = conn.execute(
                    select(resource.c.id).where(resource.c.resource_type == rtype, resource.c.id.in_(ids))
                )
                existing.update((rtype, r.id) for r in rows)
            fresh: list[dict[str, Any]] = []
            seen: set[tuple[str, str]] = set()
            for where, res in good:
                rtype = res["resourceType"]
                key = (rtype, res.get("id") or "")
                if key in existing or key in seen:
                    try:
                        with conn.begin_nested():
                            u.update(rtype, res["id"], res)
                        report.updated += 1
                    except FhirError as exc:
                        report.rejected.append(f"{where}: {exc.diagnostics}")
                    continue
                if res.get("id"):
                    seen.add(key)
                fresh.append(res)
            if fresh:
                self._insert_new(conn, fresh)
                report.created += len(fresh)

    def _insert_new(self, conn: Any, items: list[dict[str, Any]]) -> None:
        stamp, micros = now_instant()
        rows, bodies = [], []
        for res in items:
            rid = res.get("id") or str(uuid.uuid4())
            meta = dict(res.get("meta") or {})
            meta["versionId"] = "1"
            meta["lastUpdated"] = stamp
            body = {"resourceType": res["resourceType"], "id": rid, "meta": meta}
            body.update((k, v) for k, v in res.items() if k not in ("resourceType", "id", "meta"))
            content = orjson.dumps(body)
            bodies.append(body)
            rows.append({"resource_type": body["resourceType"], "id": rid, "version_id": 1,
                         "last_updated": micros, "deleted": False, "content": content})
        pks = conn.execute(
            insert(resource).returning(resource.c.pk, sort_by_parameter_order=True), rows
        ).scalars().all()
        conn.execute(insert(resource_version), [
            {"resource_pk": pk, "version_id": 1, "resource_type": row["resource_type"], "id": row["id"],
             "last_updated": micros, "method": "POST", "content": row["content"], "author": self.ctx.author}
            for pk, row in zip(pks, rows, strict=True)
        ])
        tables: dict[str, list[dict[str, Any]]] = {}
        for pk, body in zip(pks, bodies, strict=True):
            index = build_rows(body, self.repo.registry, self.repo.base_url)
            own = body["id"] if body["resourceType"] == "Patient" else None
            for name, found in index.with_key(pk, own).items():
                tables.setdefault(name, []).extend(found)
        self.repo.writer.insert_rows(conn, tables)

    def load_files(self, files: list[Path], batch_size: int = 1000, progress: bool = True) -> ImportReport:
        report = ImportReport()
        total_bytes = sum(p.stat().st_size for p in files)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=total_bytes, unit="B", unit_scale=True, desc="import", file=sys.stderr)
        for path in files:
            batch: list[tuple[str, dict[str, Any]]] = []
            for number, line in _lines(path):
                where = f"{path.name}:{number}"
                try:
                    batch.append((where, orjson.loads(line)))
                except orjson.JSONDecodeError as exc:
                    report.rejected.append(f"{where}: not JSON ({exc})")
                if bar is not None:
                    bar.update(len(line) + 1)
                if len(batch) >= batch_size:
                    self.load_batch(batch, report)
                    batch = []
            if batch:
                self.load_batch(batch, report)
        if bar is not None:
            bar.close()
        return report


def refresh_statistics(engine: Engine) -> None:
    """After a bulk load on PostgreSQL: VACUUM (ANALYZE) the store's tables.

    The planner's statistics and the visibility map lag a load of millions of rows until
    autovacuum reaches them; meanwhile PostgreSQL guessed four matches for a family-name
    prefix that had 8,000 and fetched every heap row an index-only scan could have skipped.
    SQLite's plans do not use statistics (the store keeps none), so nothing is done there.
    """
    if engine.dialect.name != "postgresql":
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in metadata.sorted_tables:
            conn.exec_driver_sql(f"VACUUM (ANALYZE) {table.name}")


def import_ndjson(settings: Settings, files: list[Path], batch_size: int = 1000, progress: bool = True) -> int:
    missing = [str(p) for p in files if not p.exists()]
    if missing:
        print(f"import: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    engine = make_engine(settings.database_url)
    migrate(engine)
    registry = default_registry()
    check_definitions(engine, registry)
    repo = Repository(engine, registry, base_url=settings.fhir_base_url)
    repo.validator.warm()
    heap.settle()
    start_background_checkpoints(engine)
    try:
        report = BulkLoader(repo).load_files(files, batch_size=batch_size, progress=progress)
    finally:
        stop_background_checkpoints(engine)
    if report.created or report.updated:
        refresh_statistics(engine)
    for problem in report.rejected[:50]:
        print(f"rejected {problem}", file=sys.stderr)
    if len(report.rejected) > 50:
        print(f"... and {len(report.rejected) - 50} more rejected", file=sys.stderr)
    print(f"imported {report.total} resources ({report.created} created, {report.updated} updated), "
          f"{len(report.rejected)} rejected")
    return 1 if report.rejected else 0
