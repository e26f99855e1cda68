"""A unit of work: the interactions, run inside one database transaction.

Writes set ``id``, ``meta.versionId`` and ``meta.lastUpdated``, keep every version, and
rewrite the search index rows of the resource in the same transaction. Reads and searches
add the caller's visibility predicate to their SQL. Conditional interactions search with
that same visibility, so their outcomes never reveal a hidden resource.
"""

from __future__ import annotations

import math
import re
import uuid
import zlib
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import jsonpatch
import orjson
from sqlalchemy import (
    ColumnElement,
    Connection,
    FromClause,
    and_,
    false,
    func,
    or_,
    select,
    text,
    true,
    tuple_,
    update,
)

from server.consent.callers import Caller
from server.consent.context import AccessContext
from server.consent.policy import Visibility
from server.consent.predicate import ConsentPredicate
from server.definitions.search_parameters import RESOURCE_TYPES
from server.fhir.dates import DateFormatError, now_instant, parse_range
from server.fhir.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    NotFound,
    PreconditionFailed,
    Unprocessable,
)
from server.search.query import Clause, Include, SearchQuery
from server.search.ranges import fold_date_clauses
from server.search.sql import SqlCompiler
from server.store.indexing import IndexRows, build_rows
from server.store.records import HistoryPage, SearchPage, StoredResource, WriteOutcome
from server.store.schema import INDEX_TABLES, compartment, reference_index, resource, resource_version

if TYPE_CHECKING:
    from server.store.repository import Repository

ID_PATTERN = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_COLUMNS = (resource.c.pk, resource.c.resource_type, resource.c.id, resource.c.version_id,
            resource.c.last_updated, resource.c.content, resource.c.deleted)
MAX_INCLUDE_ROUNDS = 4
#: a clause with fewer index rows than this drives its query (see UnitOfWork._choose_driver)
DRIVER_LIMIT = 2000
#: how many covering-index entries a clause may read for the price of one probe of the key walk:
#: SQLite reads a driving clause's sorted matches and stops at the page; PostgreSQL joins every
#: match to its resource before the sort (measured at 100k resources: 2.5 us a match there)
WALK_PROBE_COST = 30
WALK_PROBE_COST_POSTGRESQL = 2
#: the most index rows a clause is counted up to when choosing how to run a search
DRIVER_CAP = 50_000


@dataclass(frozen=True)
class PreparedResource:
    """A resource checked and indexed before its transaction starts.

    Validation and index building are most of a write's CPU; doing them before the
    store's write lock is taken lets several workers do that work at once.
    """

    resource_type: str
    resource: dict[str, Any]
    rows: IndexRows


def prepare(repo: Repository, res: Any, rtype: str | None = None) -> PreparedResource:
    """Check ``res`` (type, validity) and compute its index rows; raises the FHIR error to answer."""
    if not isinstance(res, dict) or not isinstance(res.get("resourceType"), str):
        raise BadRequest("the body is not a FHIR resource (no resourceType)")
    actual = res["resourceType"]
    if rtype is not None and actual != rtype:
        raise Unprocessable(f"the body is a {actual}, but the URL names {rtype}", code="invalid")
    if actual not in RESOURCE_TYPES:
        raise NotFound(f"resource type {actual!r} is not served here")
    repo.validator.validate(res)
    repo.hooks.check(res)
    return PreparedResource(actual, res, build_rows(res, repo.registry, repo.base_url))


def _pages_by_last_updated(query: SearchQuery) -> bool:
    """Whether a search without ``_sort`` pages in (lastUpdated, key) order instead of key order.

    Without ``_sort`` the order is the server's to choose. A ``_lastUpdated`` range
    ("what changed since ...") matches resources that cluster at the end of the key order,
    so walking the type by key reads nearly all of it before the first match; walking the
    (type, last_updated) index reads one page. The choice depends on the query alone, so
    every page of one search is in the same order.
    """
    if query.sort or len(query.resource_types) != 1:
        return False
    return any(c.param is None and c.name == "_lastUpdated" for c in query.clauses)


def _clause_key(rtype: str, c: Clause) -> tuple[Any, ...]:
    """What a clause's index rows depend on: its type, parameter, modifier and values."""
    def values(vs: list[Any]) -> tuple[Any, ...]:
        return tuple((v.prefix, v.raw, v.system, v.code, v.has_bar) for v in vs)

    return (rtype, c.param.param_id if c.param is not None else c.name, c.modifier, values(c.values),
            tuple(values(vs) for vs in c.same_row))


def _stored(row: Any) -> StoredResource:
    return StoredResource(
        resource_type=row.resource_type, id=row.id, version_id=row.version_id,
        last_updated=row.last_updated, content=row.content, deleted=bool(row.deleted), pk=row.pk,
    )


def parse_etag(value: str) -> int:
    m = re.fullmatch(r'\s*(?:W/)?"?(\d+)"?\s*', value)
    if not m:
        raise BadRequest(f"If-Match {value!r} is not a version ETag such as W/\"3\"")
    return int(m.group(1))


class UnitOfWork:
    def __init__(self, repo: Repository, conn: Connection, ctx: AccessContext):
        self.repo = repo
        self.conn = conn
        self.ctx = ctx
        self.policy = repo.policy
        self.compiler = SqlCompiler(repo.base_url, self.visible, probe_hint=repo.is_sqlite)
        self._consent_predicates: dict[Caller, ConsentPredicate] = {}
        self._now: int | None = None

    # -- visibility ----------------------------------------------------------------------
    def visible(self, rtype: str, r: FromClause, interaction: str = "r") -> ColumnElement[bool]:
        """The caller's visibility of ``rtype`` as a predicate on the alias ``r``."""
        vis = self.policy.visibility(self.ctx, rtype, interaction)
        return self._compile_visibility(rtype, r, vis)

    def _compile_visibility(self, rtype: str, r: FromClause, vis: Visibility,
                            types: list[str] | None = None) -> ColumnElement[bool]:
        """``vis`` as a predicate on ``r``, a row of ``rtype`` (or of any of ``types``, which
        share ``rtype``'s visibility)."""
        if vis.everything:
            return true()
        if vis.nothing:
            return false()
        preds: list[ColumnElement[bool]] = []
        if vis.patient is not None:
            preds.append(r.c.pk.in_(select(compartment.c.resource_pk).where(compartment.c.patient_id == vis.patient)))
        if vis.consent is not None:
            preds.append(self._consent(vis.consent).visible(r, types or [rtype]))
        alternatives: list[ColumnElement[bool]] = []
        for alt in vis.alternatives:
            if not alt:
                alternatives.append(true())
                continue
            # filters are parsed as a search by the system itself: they come from a token
            query = self.repo.parser.parse([rtype], list(alt))
            alternatives.append(and_(*(self.compiler.clause(rtype, r, c) for c in query.clauses)))
        if alternatives:
            preds.append(or_(*alternatives))
        return and_(*preds) if preds else true()

    def visible_any(self, types: list[str], r: FromClause) -> ColumnElement[bool]:
        """The caller's visibility of rows of any of ``types`` (history, ``$everything``).

        Types the policy treats alike share one predicate, so a query over every type
        carries the consent decision once rather than once per type.
        """
        groups: dict[Visibility, list[str]] = {}
        for t in types:
            groups.setdefault(self.policy.visibility(self.ctx, t), []).append(t)
        parts: list[ColumnElement[bool]] = []
        for vis, members in groups.items():
            if vis.nothing:
                continue
            if any(alt for alt in vis.alternatives):  # scope filters are parsed per type
                parts += [and_(r.c.resource_type == t, self._compile_visibility(t, r, vis)) for t in members]
                continue
            of_type = r.c.resource_type == members[0] if len(members) == 1 else r.c.resource_type.in_(members)
            parts.append(and_(of_type, self._compile_visibility(members[0], r, vis, members)))
        return or_(*parts) if parts else false()

    def _consent(self, caller: Caller) -> ConsentPredicate:
        """The consent predicate for ``caller``, fixed at one instant for the whole unit."""
        found = self._consent_predicates.get(caller)
        if found is None:
            if self._now is None:
                self._now = now_instant()[1]
            found = ConsentPredicate(self.conn, self.repo.registry, caller, self._now)
            self._consent_predicates[caller] = found
        return found

    def _consent_allows_change(self, rtype: str, pk: int) -> bool:
        """Whether the consent decision lets the caller see, and so change, the row ``pk``."""
        caller = self.policy.consent_for_write(self.ctx)
        if caller is None:
            return True
        r = resource.alias()
        stmt = select(r.c.pk).where(r.c.pk == pk, self._consent(caller).visible(r))
        return self.conn.execute(stmt).first() is not None

    def _check_writable(self, rtype: str, pk: int, interaction: str) -> None:
        if not self._writable(rtype, pk, interaction):
            raise Forbidden(f"the token's scopes do not allow writing this {rtype}")

    def _writable(self, rtype: str, pk: int, interaction: str) -> bool:
        vis = self.policy.write_visibility(self.ctx, rtype, interaction)
        if vis.everything:
            return True
        if vis.nothing:
            self.policy.require(self.ctx, interaction, rtype)
        r = resource.alias()
        ok = self.conn.execute(select(r.c.pk).where(r.c.pk == pk, self._compile_visibility(rtype, r, vis))).first()
        return ok is not None

    def _require_existing_writable(self, rtype: str, id: str, row: Any, interaction: str) -> None:
        """An update or delete needs the current version inside the caller's grant for it
        (not their read grant: a write-only client may write). Outside it: 403 when the
        caller can see the resource, 404 when they cannot, so nothing hidden is revealed.
        A resource the consent decision hides from the caller is not known to them."""
        if not self._consent_allows_change(rtype, row.pk):
            raise NotFound(f"{rtype}/{id} is not known")
        if self._writable(rtype, row.pk, interaction):
            return
        if self._current_row(rtype, id) is None:
            raise NotFound(f"{rtype}/{id} is not known")
        raise Forbidden(f"the token's scopes do not allow writing this {rtype}")

    # -- reads -------------------------------------------------------------------------------
    def _current_row(self, rtype: str, id: str, visible_only: bool = True) -> Any:
        if not visible_only or self.policy.visibility(self.ctx, rtype).everything:
            # every write looks its target up first: the reader's precompiled statement, in
            # this transaction, without SQLAlchemy's statement building
            return self.repo.reader.current(rtype, id, self.conn.connection.dbapi_connection)
        r = resource
        stmt = select(*_COLUMNS).where(r.c.resource_type == rtype, r.c.id == id, self.visible(rtype, r))
        return self.conn.execute(stmt).first()

    def is_visible(self, rtype: str, pk: int) -> bool:
        """Whether the caller may see the row ``pk`` (the read path's visibility check)."""
        r = resource
        stmt = select(r.c.pk).where(r.c.pk == pk, self.visible(rtype, r))
        return self.conn.execute(stmt).first() is not None

    def read(self, rtype: str, id: str) -> StoredResource:
        self.policy.require(self.ctx, "r", rtype)
        row = self._current_row(rtype, id)
        if row is None:
            raise NotFound(f"{rtype}/{id} is not known")
        if row.deleted:
            raise Gone(f"{rtype}/{id} has been deleted")
        return _stored(row)

    def vread(self, rtype: str, id: str, version_id: str) -> StoredResource:
        self.policy.require(self.ctx, "r", rtype)
        row = self._current_row(rtype, id)
        if row is None or not version_id.isdigit():
            raise NotFound(f"{rtype}/{id}/_history/{version_id} is not known")
        v = resource_version.c
        ver = self.conn.execute(
            select(v.version_id, v.last_updated, v.content, v.method)
            .where(v.resource_pk == row.pk, v.version_id == int(version_id))
        ).first()
        if ver is None:
            raise NotFound(f"{rtype}/{id}/_history/{version_id} is not known")
        if ver.content is None:
            raise Gone(f"{rtype}/{id}/_history/{version_id} is a deletion")
        return StoredResource(rtype, id, ver.version_id, ver.last_updated, ver.content, False, ver.method, row.pk)

    # -- writes ------------------------------------------------------------------------------
    def _prepare(self, res: dict[str, Any], rtype: str | None = None,
                 prepared: PreparedResource | None = None) -> PreparedResource:
        if prepared is not None and prepared.resource is res:
            if rtype is not None and prepared.resource_type != rtype:
                raise Unprocessable(f"the body is a {prepared.resource_type}, but the URL names {rtype}",
                                    code="invalid")
            return prepared
        return prepare(self.repo, res, rtype)

    def _write(
        self, rtype: str, id: str, prepared: PreparedResource, method: str, prev: Any | None
    ) -> StoredResource:
        res = prepared.resource
        version = (prev.version_id + 1) if prev is not None else 1
        stamp, micros = now_instant()
        if prev is not None and micros <= prev.last_updated:
            micros = prev.last_updated + 1
        meta = dict(res.get("meta") or {})
        meta["versionId"] = str(version)
        meta["lastUpdated"] = stamp
        body = {"resourceType": rtype, "id": id, "meta": meta}
        body.update((k, v) for k, v in res.items() if k not in ("resourceType", "id", "meta"))
        content = orjson.dumps(body)
        writer = self.repo.writer
        if prev is None:
            pk = writer.insert_resource(self.conn, {
                "resource_type": rtype, "id": id, "version_id": version, "last_updated": micros,
                "deleted": False, "content": content,
            })
        else:
            pk = prev.pk
            r = resource.c
            done = self.conn.execute(
                update(resource).where(r.pk == pk, r.version_id == prev.version_id)
                .values(version_id=version, last_updated=micros, deleted=False, content=content)
            )
            if done.rowcount != 1:
                raise Conflict(f"{rtype}/{id} was changed by another request; retry with its new version")
            writer.clear_index(self.conn, pk)
        tables = prepared.rows.with_key(pk, id if rtype == "Patient" else None)
        tables["resource_version"] = [{
            "resource_pk": pk, "version_id": version, "resource_type": rtype, "id": id,
            "last_updated": micros, "method": method, "content": content, "author": self.ctx.author,
        }]
        writer.insert_rows(self.conn, tables)
        self._check_writable(rtype, pk, "c" if prev is None else "u")
        stored = StoredResource(rtype, id, version, micros, content, False, method, pk)
        self.repo.hooks.written(self, stored, body, prev.content if prev is not None else None)
        return stored

    def _lock(self, key: str) -> None:
        """Serialise conditional writes on the same condition (PostgreSQL; SQLite's writer lock
        already serialises every write)."""
        if not self.repo.is_sqlite:
            self.conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": zlib.crc32(key.encode())})

    def _match(self, rtype: str, query: list[tuple[str, str]], what: str) -> list[StoredResource]:
        if not query:
            raise BadRequest(f"{what} needs search criteria")
        return self.match(rtype, query)

    def match(self, rtype: str, query: list[tuple[str, str]], limit: int = 2) -> list[StoredResource]:
        """Up to ``limit`` resources matching a condition (conditional interactions, references).

        A condition on one token with system and code (``identifier=system|value``) takes
        the reader's indexed join when the caller sees the whole type; anything else, or
        a caller with narrowed visibility, goes through the search engine, whose SQL
        carries the visibility predicate.
        """
        parsed = self.repo.parser.parse([rtype], query, strict=True)
        parsed.count = limit
        clauses = parsed.clauses_by_type.get(rtype, [])
        if len(clauses) == 1 and not parsed.includes and not parsed.sort:
            c = clauses[0]
            v = c.values[0] if len(c.values) == 1 else None
            if (c.param is not None and c.param.type == "token" and c.modifier is None and not c.chain
                    and c.has is None and v is not None and v.system and v.code):
                self.policy.require(self.ctx, "s", rtype)
                if self.policy.visibility(self.ctx, rtype).everything:
                    dbapi = self.conn.connection.dbapi_connection
                    rows = self.repo.reader.by_token(dbapi, rtype, c.param.param_id, v.system, v.code, limit)
                    return [_stored(row) for row in rows]
        return self.search(parsed).matches

    def create(
        self, res: dict[str, Any], *, if_none_exist: str | None = None, id: str | None = None,
        prepared: PreparedResource | None = None,
    ) -> WriteOutcome:
        prepared = self._prepare(res, prepared=prepared)
        rtype = prepared.resource_type
        self.policy.require(self.ctx, "c", rtype)
        if if_none_exist:
            from urllib.parse import parse_qsl

            condition = parse_qsl(if_none_exist.lstrip("?"), keep_blank_values=True)
            self._lock(f"{rtype}?{if_none_exist}")
            found = self._match(rtype, condition, "If-None-Exist")
            if len(found) > 1:
                raise PreconditionFailed(f"If-None-Exist {if_none_exist!r} matches more than one {rtype}")
            if found:
                return WriteOutcome(found[0], created=False, matched=True)
        new_id = id or str(uuid.uuid4())
        return WriteOutcome(self._write(rtype, new_id, prepared, "POST", None), created=True)

    def update(
        self, rtype: str, id: str, res: dict[str, Any], *, if_match: str | None = None, method: str = "PUT",
        prepared: PreparedResource | None = None,
    ) -> WriteOutcome:
        prepared = self._prepare(res, rtype, prepared)
        if res.get("id") != id:
            raise BadRequest(f"the resource's id ({res.get('id')!r}) must match the URL's ({id!r})")
        if not ID_PATTERN.match(id):
            raise BadRequest(f"{id!r} is not a valid FHIR id")
        prev = self._current_row(rtype, id, visible_only=False)
        if prev is not None and not prev.deleted:
            self.policy.require(self.ctx, "u", rtype)
            self._require_existing_writable(rtype, id, prev, "u")
        else:
            self.policy.require(self.ctx, "c", rtype)
        if if_match is not None:
            expected = parse_etag(if_match)
            current = prev.version_id if prev is not None and not prev.deleted else None
            if current != expected:
                raise PreconditionFailed(
                    f"{rtype}/{id} is at version {current}, not {expected}" if current else
                    f"{rtype}/{id} does not exist, so If-Match {if_match!r} cannot match"
                )
        if prev is not None and not prev.deleted and _same_content(prev.content, res):
            return WriteOutcome(_stored(prev), created=False, matched=True)
        stored = self._write(rtype, id, prepared, method, prev)
        return WriteOutcome(stored, created=prev is None or bool(prev.deleted))

    def conditional_update(self, rtype: str, query: list[tuple[str, str]], res: dict[str, Any]) -> WriteOutcome:
        prepared = self._prepare(res, rtype)
        self._lock(f"{rtype}?{sorted(query)}")
        found = self._match(rtype, query, "a conditional update")
        if len(found) > 1:
            raise PreconditionFailed(f"the condition matches more than one {rtype}")
        if not found:
            if res.get("id"):
                # update-as-create with the given id; a resource of that id exists but did not
                # match the condition, and overwriting it would defeat the condition
                current = self._current_row(rtype, res["id"])
                if current is not None and not current.deleted:
                    raise BadRequest(
                        f"the resource's id {res['id']!r} names a {rtype} that does not match the condition"
                    )
                return self.update(rtype, res["id"], res, prepared=prepared)
            return self.create(res, prepared=prepared)
        target = found[0]
        if res.get("id") not in (None, target.id):
            raise BadRequest(f"the resource's id {res.get('id')!r} differs from the matched {rtype}/{target.id}")
        body = dict(res, id=target.id)
        return self.update(rtype, target.id, body)

    def patch(
        self, rtype: str, id: str, operations: list[dict[str, Any]], *, if_match: str | None = None
    ) -> WriteOutcome:
        current = self.read(rtype, id)
        try:
            patched = jsonpatch.apply_patch(current.resource, operations)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, KeyError) as exc:
            raise Unprocessable(f"the JSON Patch cannot be applied: {exc}") from None
        if patched.get("id") != id or patched.get("resourceType") != rtype:
            raise Unprocessable("a patch may not change the resource's type or id")
        return self.update(rtype, id, patched, if_match=if_match, method="PATCH")

    def delete(self, rtype: str, id: str) -> StoredResource | None:
        self.policy.require(self.ctx, "d", rtype)
        row = self._current_row(rtype, id, visible_only=False)
        if row is None or row.deleted:
            return None
        self._require_existing_writable(rtype, id, row, "d")
        _, micros = now_instant()
        micros = max(micros, row.last_updated + 1)
        version = row.version_id + 1
        r = resource.c
        done = self.conn.execute(
            update(resource).where(r.pk == row.pk, r.version_id == row.version_id)
            .values(version_id=version, last_updated=micros, deleted=True, content=None)
        )
        if done.rowcount != 1:
            raise Conflict(f"{rtype}/{id} was changed by another request")
        self.repo.writer.clear_index(self.conn, row.pk)
        self.repo.writer.insert_rows(self.conn, {"resource_version": [{
            "resource_pk": row.pk, "version_id": version, "resource_type": rtype, "id": id,
            "last_updated": micros, "method": "DELETE", "content": None, "author": self.ctx.author,
        }]})
        self.repo.hooks.deleted(self, rtype, id, row.content)
        return StoredResource(rtype, id, version, micros, None, True, "DELETE", row.pk)

    def conditional_delete(self, rtype: str, query: list[tuple[str, str]]) -> int:
        found = self._match(rtype, query, "a conditional delete")
        if len(found) > 1:
            raise PreconditionFailed(f"the condition matches more than one {rtype}")
        for item in found:
            self.delete(rtype, item.id)
        return len(found)

    # -- search --------------------------------------------------------------------------------
    def _type_predicate(
        self, rtype: str, r: FromClause, clauses: list[Clause], plan: bool = False, page: int = 50
    ) -> ColumnElement[bool]:
        clauses = fold_date_clauses(clauses)
        if not plan or not clauses:
            return and_(
                r.c.resource_type == rtype,
                *(self.compiler.clause(rtype, r, c) for c in clauses),
                self.visible(rtype, r),
            )
        driver = self._choose_driver(rtype, r, clauses, page)
        preds: list[ColumnElement[bool]] = []
        if driver is None:
            preds.append(r.c.resource_type == rtype)  # scan the type in key order, probe each clause
        for c in clauses:
            self.compiler.correlated = c is not driver
            try:
                preds.append(self.compiler.clause(rtype, r, c))
            finally:
                self.compiler.correlated = False
        return and_(*preds, self.visible(rtype, r))

    def _choose_driver(self, rtype: str, r: FromClause, clauses: list[Clause], page: int = 50) -> Clause | None:
        """The clause to drive the query from, or None to scan the type in key order.

        A clause is read from its covering index at a fraction of a microsecond per match;
        walking the type's resources in key order and probing each clause's index costs a
        probe per resource walked, and finds a page of ``page`` after about
        ``page * resources of the type / matches`` of them. The clause with the fewest
        matches drives when reading all its matches is the cheaper of the two: always
        below :data:`DRIVER_LIMIT` matches, and up to ``sqrt(WALK_PROBE_COST * page *
        resources of the type)`` (a family-name prefix matching 4% of 200,000 Patients
        drives; ``status=active`` matching a third of the referrals walks). Each clause's
        matches are counted up to that bound, which costs about as much as reading them.
        """
        candidates = [c for c in clauses
                      if not (c.param is None or c.has is not None or c.chain or c.modifier in ("not", "missing"))]
        if not candidates:
            return None
        counts = self.repo.plan_counts
        of_type = counts.count(("type", rtype), partial(
            self._count_rows, select(resource.c.pk).where(resource.c.resource_type == rtype)))
        weight = WALK_PROBE_COST if self.repo.is_sqlite else WALK_PROBE_COST_POSTGRESQL
        cap = min(DRIVER_CAP, max(DRIVER_LIMIT, math.isqrt(weight * max(page, 1) * of_type)))
        best: tuple[int, Clause] | None = None
        for c in candidates:
            self.compiler.clause(rtype, r, c)
            sub = self.compiler.last_subquery
            if sub is None:
                continue
            limit = cap if best is None else min(cap, best[0])
            n = counts.count(_clause_key(rtype, c), partial(self._count_rows, sub), limit)
            if best is None or n < best[0]:
                best = (n, c)
        if best is None or best[0] >= cap:
            return None
        return best[1]

    def _count_rows(self, sub: Any, upto: int | None) -> int:
        """Rows of the index subquery ``sub``, counted up to ``upto``."""
        return int(self.conn.execute(select(func.count()).select_from(sub.limit(upto).subquery())).scalar_one())

    def _search_where(self, query: SearchQuery, r: FromClause) -> ColumnElement[bool]:
        for t in query.resource_types:
            self.policy.require(self.ctx, "s", t)
        plan = len(query.resource_types) == 1 and not query.sort
        per_type = [self._type_predicate(t, r, query.clauses_by_type.get(t, []), plan, query.count + 1)
                    for t in query.resource_types]
        return and_(r.c.deleted == false(), or_(*per_type) if len(per_type) > 1 else per_type[0])

    def count(self, query: SearchQuery) -> int:
        r = resource.alias("r")
        stmt = select(func.count()).select_from(r).where(self._search_where(query, r))
        return int(self.conn.execute(stmt).scalar_one())

    def search(self, query: SearchQuery, *, offset: int = 0, after: int | list[int] | None = None) -> SearchPage:
        r = resource.alias("r")
        where = self._search_where(query, r)
        if query.summary == "count" or query.count == 0:
            return SearchPage(matches=[], total=self.count(query))
        stmt = select(r.c.pk, r.c.resource_type, r.c.id, r.c.version_id, r.c.last_updated, r.c.content,
                      r.c.deleted).where(where)
        by_updated = _pages_by_last_updated(query)
        if query.sort:
            stmt = stmt.order_by(*self._sort_keys(query, r), r.c.pk).offset(offset)
        elif by_updated:
            if isinstance(after, list | tuple):
                stmt = stmt.where(tuple_(r.c.last_updated, r.c.pk) > tuple_(int(after[0]), int(after[1])))
            stmt = stmt.order_by(r.c.last_updated, r.c.pk)
        else:
            if after is not None:
                stmt = stmt.where(r.c.pk > int(after))  # type: ignore[arg-type]
            stmt = stmt.order_by(r.c.pk)
        rows = self.conn.execute(stmt.limit(query.count + 1)).all()
        has_next = len(rows) > query.count
        matches = [_stored(row) for row in rows[: query.count]]
        page = SearchPage(matches=matches, has_next=has_next)
        if has_next:
            if query.sort:
                page.next_offset = offset + query.count
            else:
                last = matches[-1]
                page.next_after = [last.last_updated, last.pk] if by_updated else last.pk  # type: ignore[assignment]
        first_page = offset == 0 and after is None
        if query.total == "accurate":
            page.total = self.count(query)
        elif not has_next and first_page and query.total != "none":
            page.total = len(matches)
        if query.includes and matches:
            page.included = self._includes(query.includes, matches)
        return page

    def _sort_keys(self, query: SearchQuery, r: FromClause) -> list[Any]:
        keys = []
        for code, desc in query.sort:
            if code == "_id":
                col: Any = r.c.id
            elif code == "_lastUpdated":
                col = r.c.last_updated
            else:
                param = self.repo.registry.get(query.resource_type, code)
                assert param is not None
                table = INDEX_TABLES[param.index_table]
                column = {
                    "token": "code", "string": "norm", "date": "high" if desc else "low",
                    "number": "high" if desc else "low", "reference": "target_id", "uri": "value",
                }[param.index_table]
                agg = func.max if desc else func.min
                col = (
                    select(agg(table.c[column]))
                    # "+ 0" keeps the planner on the per-resource index: choosing the
                    # (parameter, value) index turns each row's lookup into a scan
                    .where(table.c.resource_pk == r.c.pk, table.c.param_id + 0 == param.param_id)
                    .scalar_subquery()
                )
            # resources without a value sort last either way, on SQLite and PostgreSQL alike
            keys.append((col.desc() if desc else col.asc()).nulls_last())
        return keys

    def _includes(self, includes: list[Include], matches: list[StoredResource]) -> list[StoredResource]:
        seen = {(m.resource_type, m.id) for m in matches}
        found: list[StoredResource] = []
        frontier = matches
        for round_no in range(MAX_INCLUDE_ROUNDS):
            active = [i for i in includes if round_no == 0 or i.iterate]
            if not active or not frontier:
                break
            new: list[StoredResource] = []
            for inc in active:
                rows = self._revinclude(inc, frontier) if inc.reverse else self._include(inc, frontier)
                for item in rows:
                    key = (item.resource_type, item.id)
                    if key not in seen:
                        seen.add(key)
                        new.append(item)
            found.extend(new)
            frontier = new
        return found

    def _include(self, inc: Include, frontier: list[StoredResource]) -> list[StoredResource]:
        sources = [f.pk for f in frontier if f.resource_type == inc.source_type]
        if not sources:
            return []
        ri = reference_index.c
        params = [inc.param] if inc.param else [
            p for p in self.repo.registry.indexed_for(inc.source_type) if p.type == "reference"
        ]
        stmt = select(ri.target_type, ri.target_id).where(
            ri.resource_pk.in_(sources), ri.param_id.in_([p.param_id for p in params if p]),
            ri.target_id.is_not(None),
        )
        if inc.target_type:
            stmt = stmt.where(ri.target_type == inc.target_type)
        targets: dict[str, set[str]] = {}
        for t, i in self.conn.execute(stmt.distinct()):
            if t in RESOURCE_TYPES:
                targets.setdefault(t, set()).add(i)
        out: list[StoredResource] = []
        for t, ids in targets.items():
            if not self.policy.allows(self.ctx, "r", t) and not self.policy.allows(self.ctx, "s", t):
                continue
            r = resource.alias()
            rows = self.conn.execute(
                select(r.c.pk, r.c.resource_type, r.c.id, r.c.version_id, r.c.last_updated, r.c.content, r.c.deleted)
                .where(r.c.resource_type == t, r.c.id.in_(sorted(ids)), r.c.deleted == false(), self.visible(t, r))
            )
            out.extend(_stored(row) for row in rows)
        return out

    def _revinclude(self, inc: Include, frontier: list[StoredResource]) -> list[StoredResource]:
        if not self.policy.allows(self.ctx, "s", inc.source_type) and not self.policy.allows(
            self.ctx, "r", inc.source_type
        ):
            return []
        params = [inc.param] if inc.param else [
            p for p in self.repo.registry.indexed_for(inc.source_type) if p.type == "reference"
        ]
        ri = reference_index.c
        keys = or_(*(and_(ri.target_type == f.resource_type, ri.target_id == f.id) for f in frontier))
        r = resource.alias()
        stmt = (
            select(r.c.pk, r.c.resource_type, r.c.id, r.c.version_id, r.c.last_updated, r.c.content, r.c.deleted)
            .where(
                r.c.resource_type == inc.source_type, r.c.deleted == false(), self.visible(inc.source_type, r),
                r.c.pk.in_(select(ri.resource_pk).where(ri.param_id.in_([p.param_id for p in params if p]), keys)),
            )
            .order_by(r.c.pk)
            .limit(1000)
        )
        return [_stored(row) for row in self.conn.execute(stmt)]

    # -- $everything -----------------------------------------------------------------------
    def everything(
        self, patient_id: str, *, count: int = 50, after: int | None = None, since: str | None = None
    ) -> SearchPage:
        patient = self.read("Patient", patient_id)
        r = resource.alias("r")
        readable = [t for t in RESOURCE_TYPES
                    if self.policy.allows(self.ctx, "r", t) or self.policy.allows(self.ctx, "s", t)]
        where = and_(
            r.c.deleted == false(),
            r.c.pk.in_(select(compartment.c.resource_pk).where(compartment.c.patient_id == patient.id)),
            self.visible_any(readable, r),
        )
        if since:
            try:
                where = and_(where, r.c.last_updated >= parse_range(since)[0])
            except DateFormatError as exc:
                raise BadRequest(f"_since: {exc}") from None
        stmt = select(*(r.c[c.name] for c in _COLUMNS)).where(where).order_by(r.c.pk)
        if after is not None:
            stmt = stmt.where(r.c.pk > after)
        rows = self.conn.execute(stmt.limit(count + 1)).all()
        matches = [_stored(row) for row in rows[:count]]
        page = SearchPage(matches=matches, has_next=len(rows) > count)
        if page.has_next:
            page.next_after = matches[-1].pk
        elif after is None:
            page.total = len(matches)
        # what the compartment refers to (GP practice, practitioners, organisations)
        star = [Include(t, None, None) for t in {m.resource_type for m in matches}]
        in_compartment = {(m.resource_type, m.id) for m in matches}
        page.included = [
            i for i in self._includes(star, matches)
            if (i.resource_type, i.id) not in in_compartment and i.resource_type != "Patient"
        ]
        return page

    # -- history -----------------------------------------------------------------------------
    def history(
        self, rtype: str | None, id: str | None, *, since: str | None, at: str | None, count: int, offset: int = 0,
        before: tuple[int, int, int] | None = None,
    ) -> HistoryPage:
        """Versions newest first, in a total order (time, then resource, then version) so that
        ``before`` (the key of the last entry of the previous page) continues exactly there,
        however many versions were written since."""
        types = [rtype] if rtype else [t for t in RESOURCE_TYPES if self.policy.allows(self.ctx, "r", t)]
        for t in types:
            self.policy.require(self.ctx, "r", t)
        v = resource_version.c
        r = resource.alias("r")
        where: list[ColumnElement[bool]] = []
        if id is not None and rtype is not None:
            row = self._current_row(rtype, id)
            if row is None:
                raise NotFound(f"{rtype}/{id} is not known")
            where.append(v.resource_pk == row.pk)
        else:
            # versions of resources the caller may see now; deleted ones only with full access
            where.append(self.visible_any(types, r))
        try:
            if since:
                where.append(v.last_updated >= parse_range(since)[0])
            if at:
                where.append(v.last_updated <= parse_range(at)[1])
        except DateFormatError as exc:
            raise BadRequest(f"history: {exc}") from None
        if before is not None:
            where.append(tuple_(v.last_updated, v.resource_pk, v.version_id) < tuple_(*before))
        stmt = (
            select(v.resource_pk, v.resource_type, v.id, v.version_id, v.last_updated, v.content, v.method)
            .select_from(resource_version.join(r, r.c.pk == v.resource_pk))
            .where(*where)
            .order_by(v.last_updated.desc(), v.resource_pk.desc(), v.version_id.desc())
            .offset(offset)
            .limit(count + 1)
        )
        rows = self.conn.execute(stmt).all()
        entries = [
            StoredResource(x.resource_type, x.id, x.version_id, x.last_updated, x.content,
                           x.content is None, x.method, x.resource_pk)
            for x in rows[:count]
        ]
        return HistoryPage(entries=entries, has_next=len(rows) > count)


def _same_content(stored: bytes | None, incoming: dict[str, Any]) -> bool:
    """Whether an update would change nothing but meta.versionId/lastUpdated.

    Replaying the same input must not create versions: an identical PUT is a no-op.
    """
    if stored is None:
        return False
    current = orjson.loads(stored)
    def strip(res: dict[str, Any]) -> dict[str, Any]:
        out = dict(res)
        meta = dict(out.pop("meta", None) or {})
        meta.pop("versionId", None)
        meta.pop("lastUpdated", None)
        if meta:
            out["meta"] = meta
        return out
    return strip(current) == strip(incoming)
