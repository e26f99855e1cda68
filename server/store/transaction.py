"""Batch and transaction Bundles, processed against the store.

A transaction runs in one unit of work: all of it commits or none. Entries run in the
order R4 prescribes (DELETE, POST, PUT/PATCH, GET) whatever their order in the Bundle;
``urn:uuid:`` full URLs and conditional references (``Patient?identifier=...``) are
resolved before anything is written, and every reference in every entry is rewritten to
the resolved ``Type/id``. Answers keep the order of the request. A batch runs each entry
in a unit of its own, so one failing entry leaves the others standing.

This lives beside the repository rather than in the REST layer because adapters land
their messages in-process through exactly the same rules as a client POSTing a Bundle.
``base`` is the public FHIR base for ``response.location``; in-process callers may leave
it empty and get relative locations.

Validation and index rows are most of a transaction's CPU, and they depend on how its
identities resolve (a reference to ``urn:uuid:...`` becomes ``Patient/<id>``). A caller that
can say how they will resolve (an adapter landing its own Bundles) may have
:func:`plan_transaction` check and index every resource before the database transaction,
even in another process; :func:`apply_transaction` then uses each planned resource whose
resolution came out as expected and prepares the others as usual, so the outcome is the same
as without a plan.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import orjson
from sqlalchemy import Connection, bindparam, select

from server.consent.context import AccessContext
from server.definitions.search_parameters import RESOURCE_TYPES
from server.fhir.dates import format_instant
from server.fhir.errors import BadRequest, FhirError, NotFound, PreconditionFailed
from server.store.indexing import IndexRows
from server.store.records import StoredResource
from server.store.schema import resource as resource_table
from server.store.unit import PreparedResource, UnitOfWork, _same_content, prepare

if TYPE_CHECKING:
    from server.store.repository import Repository

ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}


def _response(status: str, stored: StoredResource | None, base: str) -> dict[str, Any]:
    out: dict[str, Any] = {"status": status}
    if stored is not None:
        where = f"{stored.resource_type}/{stored.id}/_history/{stored.version_id}"
        out["location"] = f"{base}/{where}" if base else where
        out["etag"] = stored.etag
        out["lastModified"] = format_instant(stored.last_updated)
    return out


def _text(obj: dict[str, Any], key: str, where: str) -> str | None:
    """``obj[key]`` when it is a string (None when absent); any other JSON is a 400 that says where."""
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    kind = {dict: "an object", list: "an array", bool: "a boolean"}.get(type(value), "a number")
    raise BadRequest(f"{where}.{key} must be a string, not {kind}")


class _Entry:
    def __init__(self, index: int, raw: Any, base: str):
        if not isinstance(raw, dict):
            raise BadRequest(f"Bundle.entry[{index}] is not an object")
        self.index = index
        where = f"Bundle.entry[{index}]"
        self.full_url: str | None = _text(raw, "fullUrl", where)
        self.resource: dict[str, Any] | None = raw.get("resource")
        req = raw.get("request")
        if not isinstance(req, dict) or not req.get("method") or not req.get("url"):
            raise BadRequest(f"{where}.request needs a method and a url")
        method, url = _text(req, "method", f"{where}.request"), _text(req, "url", f"{where}.request")
        assert method is not None and url is not None
        self.method: str = method.upper()
        if self.method not in ORDER:
            raise BadRequest(f"{where}.request.method {self.method!r} is not allowed")
        if self.method in ("POST", "PUT") and not isinstance(self.resource, dict):
            raise BadRequest(f"{where}.resource: {self.method} needs a resource (a JSON object)")
        if self.resource is not None and not isinstance(self.resource, (dict, list)):
            raise BadRequest(f"{where}.resource is not a resource (a JSON object)")
        if base and url.startswith(base + "/"):
            url = url[len(base) + 1 :]
        self.url = url.lstrip("/")
        self.if_none_exist: str | None = _text(req, "ifNoneExist", f"{where}.request")
        self.if_match: str | None = _text(req, "ifMatch", f"{where}.request")
        parts = urlsplit(self.url)
        segments = [s for s in parts.path.split("/") if s]
        self.query = parse_qsl(parts.query, keep_blank_values=True)
        self.type = segments[0] if segments else ""
        self.id = segments[1] if len(segments) > 1 else None
        self.segments = segments
        self.target_id: str | None = None

    def where(self) -> str:
        return f"Bundle.entry[{self.index}]"


def _rewrite(value: Any, mapping: Mapping[str, str], used: set[str] | None = None) -> Any:
    """``value`` with every reference named in ``mapping`` replaced; ``used`` collects the
    references that were (those not named anywhere are left as they are)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k == "reference" and isinstance(v, str):
                if v in mapping:
                    out[k] = mapping[v]
                    if used is not None:
                        used.add(v)
                else:
                    out[k] = v
                    if used is not None and "?" in v and not v.startswith("#"):
                        used.add(v)  # a conditional reference: resolved only in the transaction
            else:
                out[k] = _rewrite(v, mapping, used)
        return out
    if isinstance(value, list):
        return [_rewrite(v, mapping, used) for v in value]
    return value


@dataclass(frozen=True)
class PlannedEntry:
    """One entry's resource as it will be written, checked and indexed ahead of time."""

    #: the id the entry was expected to write to
    target_id: str
    #: each reference the resource carried and what it was rewritten to
    refs: tuple[tuple[str, str], ...]
    prepared: PreparedResource


@dataclass
class TransactionPlan:
    """What :func:`plan_transaction` worked out; plain data, so it may cross processes."""

    #: entry index -> the id it gets if it creates a resource (nothing matched)
    ids: dict[int, str] = field(default_factory=dict)
    entries: dict[int, PlannedEntry] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON-able form (index rows are plain values): orjson carries it between processes
        several times faster than pickle carries the objects."""
        return {
            "ids": [[i, v] for i, v in self.ids.items()],
            "entries": [[i, p.target_id, p.refs, p.prepared.resource_type, p.prepared.resource,
                         p.prepared.rows.tables(), sorted(p.prepared.rows.patients)]
                        for i, p in self.entries.items()],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TransactionPlan:
        plan = cls({int(i): v for i, v in data["ids"]})
        for i, target, refs, rtype, res, tables, patients in data["entries"]:
            rows = IndexRows(**tables, patients=set(patients))
            prepared = PreparedResource(rtype, res, rows)
            plan.entries[int(i)] = PlannedEntry(target, tuple((r, t) for r, t in refs), prepared)
        return plan


def plan_transaction(
    repo: Repository, entries_raw: list[Any], base: str = "", *, new_id: Callable[[str], str] | None = None,
    look_up: bool = True, cache: dict[bytes, PreparedResource] | None = None,
) -> TransactionPlan:
    """Validate and index a transaction's resources before its database transaction.

    Each conditional entry is expected to resolve to what its condition matches now
    (``look_up``: an identifier condition read from the committed store) or, when nothing
    matches, to a new resource under ``new_id(condition)`` (default: a random id). A caller
    that names the same new id for the same condition every time (within one run) gets the
    same guess for every message that mentions a new patient, even before the first lands.
    Entries that cannot be planned (bad entries, conditional references, resources that fail
    validation) are left out: :func:`apply_transaction` deals with them, errors included, as
    if there were no plan. ``cache`` keeps prepared resources by content across calls, for
    resources that recur (the GP practice of every referral it sends).
    """
    plan = TransactionPlan()
    try:
        entries = [_Entry(i, e, base) for i, e in enumerate(entries_raw)]
    except FhirError:
        return plan
    mapping: dict[str, str] = {}
    targets: dict[int, str] = {}
    with _ReadConnection(repo) as read:
        for e in entries:
            if e.type not in RESOURCE_TYPES:
                return plan
            _plan_target(repo, e, plan, targets, read if look_up else None, new_id)
            if e.full_url and e.index in targets:
                mapping[e.full_url] = f"{e.type}/{targets[e.index]}"
    for e in entries:
        target = targets.get(e.index)
        if target is None or not isinstance(e.resource, dict):
            continue
        used: set[str] = set()
        body = dict(_rewrite(e.resource, mapping, used))
        if any(ref not in mapping for ref in used):
            continue
        if e.method == "POST":
            body.pop("id", None)
        else:
            body["id"] = target
        key = orjson.dumps(body) if cache is not None else b""
        prepared = cache.get(key) if cache is not None else None
        if prepared is None:
            try:
                prepared = prepare(repo, body, e.type if e.method == "PUT" else None)
            except FhirError:
                continue
            if cache is not None:
                if len(cache) >= 4096:
                    cache.clear()
                cache[key] = prepared
        plan.entries[e.index] = PlannedEntry(target, tuple((r, mapping[r]) for r in sorted(used)), prepared)
    return plan


def _plan_target(repo: Repository, e: _Entry, plan: TransactionPlan, targets: dict[int, str],
                 read: _ReadConnection | None, new_id: Callable[[str], str] | None) -> None:
    """The id an entry is expected to write to (into ``targets``) and, for an entry that may
    create, the id it creates under (into ``plan.ids``)."""
    if e.method == "PUT" and e.id is not None:
        targets[e.index] = e.id
        return
    if e.method == "POST":
        cond = e.if_none_exist.lstrip("?") if e.if_none_exist else None
    elif e.method == "PUT" and e.id is None and e.query:
        cond = e.url.partition("?")[2]
    else:
        return
    given = e.resource.get("id") if e.method == "PUT" and isinstance(e.resource, dict) else None
    fresh = (new_id(f"{e.type}?{cond}") if new_id and cond else None) or str(uuid.uuid4())
    if not given:
        plan.ids[e.index] = fresh
    found = read.match(e.type, cond) if read is not None and cond else None
    targets[e.index] = found or given or fresh


class _ReadConnection:
    """A pooled connection for identifier lookups in the committed store, opened on first use."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.conn: Any = None

    def __enter__(self) -> _ReadConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.conn is not None:
            self.conn.close()

    def match(self, rtype: str, cond: str) -> str | None:
        """The id of the one resource an identifier condition (``identifier=system|value``)
        matches; None when none or several do, or for any other kind of condition."""
        params = parse_qsl(cond, keep_blank_values=True)
        if len(params) != 1:
            return None
        name, value = params[0]
        param = self.repo.registry.get(rtype, name)
        system, bar, code = value.partition("|")
        if param is None or param.type != "token" or not bar or not system or not code or "\\" in value:
            return None
        if self.conn is None:
            self.conn = self.repo.engine.raw_connection()
        rows = self.repo.reader.by_token(self.conn, rtype, param.param_id, system, code, 2)
        return rows[0].id if len(rows) == 1 else None


#: dialect name -> (SQL, parameter names in order, or None for named parameters)
_TAKEN_SQL: dict[str, tuple[str, list[str] | None]] = {}


def _taken(u: UnitOfWork, rtype: str, id: str) -> bool:
    """Whether a row (a deleted one too) has this type and id, inside the unit's transaction."""
    conn: Connection = u.conn
    dialect = conn.dialect
    compiled = _TAKEN_SQL.get(dialect.name)
    if compiled is None:
        r = resource_table.c
        stmt = select(r.pk).where(r.resource_type == bindparam("t"), r.id == bindparam("i")).compile(dialect=dialect)
        positional = dialect.paramstyle in ("qmark", "numeric", "format")
        compiled = _TAKEN_SQL[dialect.name] = (str(stmt), list(stmt.positiontup or ("t", "i")) if positional else None)
    sql, order = compiled
    values = {"t": rtype, "i": id}
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql, tuple(values[k] for k in order) if order is not None else values)
        return cursor.fetchone() is not None
    finally:
        cursor.close()


def _collect_conditional_refs(value: Any, found: set[str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "reference" and isinstance(v, str) and "?" in v and not v.startswith("#"):
                found.add(v)
            else:
                _collect_conditional_refs(v, found)
    elif isinstance(value, list):
        for v in value:
            _collect_conditional_refs(v, found)


def run_transaction(
    repo: Repository, ctx: AccessContext, entries_raw: list[Any], base: str = ""
) -> list[dict[str, Any]]:
    with repo.unit(ctx) as u:
        return apply_transaction(u, entries_raw, base)


def apply_transaction(
    u: UnitOfWork, entries_raw: list[Any], base: str = "", plan: TransactionPlan | None = None
) -> list[dict[str, Any]]:
    """A transaction's entries inside a unit of work the caller owns (so that many
    transactions can share one commit, each in a savepoint of ``Repository.run_batch``).

    With a ``plan`` (see :func:`plan_transaction`), resources that create take the planned
    ids when no row has them, and every planned resource whose id and references resolved
    as planned is written as prepared."""
    entries = [_Entry(i, e, base) for i, e in enumerate(entries_raw)]
    seen_urls: set[str] = set()
    for e in entries:
        if e.full_url:
            if e.full_url in seen_urls:
                raise BadRequest(f"{e.where()}: fullUrl {e.full_url} appears twice in the transaction")
            seen_urls.add(e.full_url)
    results: list[dict[str, Any] | None] = [None] * len(entries)
    mapping: dict[str, str] = {}
    targets: set[tuple[str, str]] = set()
    fresh: set[int] = set()  # entries creating under a planned id that no row has
    matched: dict[int, StoredResource] = {}  # entries whose condition matched: the current version
    # resolve identities before writing: POST ids, conditional creates, conditional PUTs
    for e in entries:
        if e.type not in RESOURCE_TYPES:
            raise NotFound(f"{e.where()}: resource type {e.type!r} is not served here")
        if e.method in ("POST", "PUT") and not isinstance(e.resource, dict):
            raise BadRequest(f"{e.where()}: {e.method} needs a resource")
        if e.method == "POST":
            if e.if_none_exist:
                found = _match(u, e.type, parse_qsl(e.if_none_exist.lstrip("?"), keep_blank_values=True))
                if len(found) > 1:
                    raise PreconditionFailed(f"{e.where()}: ifNoneExist matches more than one {e.type}")
                if found:
                    e.target_id = found[0].id
                    results[e.index] = {"response": _response("200 OK", found[0], base)}
            if e.target_id is None:
                e.target_id = _new_id(u, e, plan, fresh)
        elif e.method in ("PUT", "PATCH", "DELETE") and e.id is None and e.query:
            found = _match(u, e.type, e.query)
            if len(found) > 1:
                raise PreconditionFailed(f"{e.where()}: the condition matches more than one {e.type}")
            if found:
                e.target_id = found[0].id
                matched[e.index] = found[0]
            elif e.method == "PUT":
                given = (e.resource or {}).get("id")
                e.target_id = given or _new_id(u, e, plan, fresh)
        else:
            e.target_id = e.id
        if e.full_url and e.target_id and e.method in ("POST", "PUT"):
            mapping[e.full_url] = f"{e.type}/{e.target_id}"
        if e.target_id and e.method in ("POST", "PUT", "PATCH", "DELETE"):
            key = (e.type, e.target_id)
            if key in targets:
                raise BadRequest(f"{e.where()}: {e.type}/{e.target_id} is the target of two entries")
            targets.add(key)
    conditional: set[str] = set()
    for e in entries:
        if e.resource is not None and (plan is None or e.index not in plan.entries):
            _collect_conditional_refs(e.resource, conditional)  # a planned resource has none
    for ref in conditional:
        rtype, _, qs = ref.partition("?")
        found = u.match(rtype, parse_qsl(qs, keep_blank_values=True))
        if len(found) != 1:
            raise PreconditionFailed(
                f"conditional reference {ref!r} matches {len(found)} resources; it must match exactly one"
            )
        mapping[ref] = f"{rtype}/{found[0].id}"
    for e in sorted(entries, key=lambda x: (ORDER[x.method], x.index)):
        if results[e.index] is not None:
            continue
        planned = plan.entries.get(e.index) if plan is not None else None
        if planned is not None and (planned.target_id != e.target_id
                                    or any(mapping.get(ref) != to for ref, to in planned.refs)):
            planned = None  # resolved otherwise than planned: prepared again below
        try:
            if planned is not None:
                results[e.index] = _apply_planned(u, e, planned, e.index in fresh, matched.get(e.index), base)
            else:
                results[e.index] = _apply(u, e, mapping, base)
        except FhirError as exc:
            exc.diagnostics = f"{e.where()}: {exc.diagnostics}"
            exc.args = (exc.diagnostics,)
            raise
    return [r or {} for r in results]


def _match(u: UnitOfWork, rtype: str, query: list[tuple[str, str]]) -> list[StoredResource]:
    """:meth:`UnitOfWork.match`, with a single ``identifier=system|value`` condition of a
    caller who sees the whole type read straight from the token index (the conditions every
    adapter Bundle is made of), without building a search query for it."""
    if len(query) == 1:
        name, value = query[0]
        param = u.repo.registry.get(rtype, name)
        system, bar, code = value.partition("|")
        if (param is not None and param.type == "token" and bar and system and code
                and not any(ch in value for ch in ",\\$")):
            u.policy.require(u.ctx, "s", rtype)
            if u.policy.visibility(u.ctx, rtype).everything:
                dbapi = u.conn.connection.dbapi_connection
                rows = u.repo.reader.by_token(dbapi, rtype, param.param_id, system, code, 2)
                return [StoredResource(r.resource_type, r.id, r.version_id, r.last_updated, r.content,
                                       r.deleted, pk=r.pk) for r in rows]
    return u.match(rtype, query)


def _new_id(u: UnitOfWork, e: _Entry, plan: TransactionPlan | None, fresh: set[int]) -> str:
    planned = plan.ids.get(e.index) if plan is not None else None
    if planned is not None and not _taken(u, e.type, planned):
        fresh.add(e.index)
        return planned
    return str(uuid.uuid4())


def _apply_planned(u: UnitOfWork, e: _Entry, planned: PlannedEntry, fresh: bool, current: StoredResource | None,
                   base: str) -> dict[str, Any]:
    """An entry whose resource was prepared by :func:`plan_transaction` as it resolved.

    ``fresh``: it creates under an id that no row has; ``current``: the version its
    condition matched in this transaction."""
    res = planned.prepared.resource
    if e.method == "POST":
        out = u.create(res, id=e.target_id, prepared=planned.prepared)
        return {"response": _response("201 Created", out.stored, base)}
    assert e.target_id is not None
    if not fresh and current is None and e.method == "PUT" and e.id is not None:
        fresh = not _taken(u, e.type, e.target_id)  # an update-as-create by id: one cheap lookup
    if fresh:
        # a new resource under an id that no row has (checked in this transaction): what
        # UnitOfWork.update does for it, without looking for the row again
        u.policy.require(u.ctx, "c", e.type)
        if e.if_match is not None:
            raise PreconditionFailed(f"{e.type}/{e.target_id} does not exist, so If-Match {e.if_match!r} cannot match")
        stored = u._write(e.type, e.target_id, planned.prepared, "PUT", None)
        return {"response": _response("201 Created", stored, base)}
    if current is not None and e.if_match is None and _same_content(current.content, res):
        # UnitOfWork.update's steps for an identical update, on the version just matched
        # instead of a second lookup: the same permission checks, then nothing written
        u.policy.require(u.ctx, "u", e.type)
        u._require_existing_writable(e.type, e.target_id, current, "u")
        return {"response": _response("200 OK", current, base)}
    out = u.update(e.type, e.target_id, res, if_match=e.if_match, prepared=planned.prepared)
    return {"response": _response("201 Created" if out.created else "200 OK", out.stored, base)}


def _apply(u: UnitOfWork, e: _Entry, mapping: dict[str, str], base: str) -> dict[str, Any]:
    res = _rewrite(e.resource, mapping) if e.resource is not None else None
    if e.method == "POST":
        assert res is not None
        body = dict(res)
        body.pop("id", None)
        out = u.create(body, id=e.target_id)
        return {"response": _response("201 Created", out.stored, base)}
    if e.method == "PUT":
        assert res is not None and e.target_id is not None
        body = dict(res, id=e.target_id)
        out = u.update(e.type, e.target_id, body, if_match=e.if_match)
        return {"response": _response("201 Created" if out.created else "200 OK", out.stored, base)}
    if e.method == "PATCH":
        if e.target_id is None:
            raise NotFound(f"nothing matches {e.url}")
        ops = res if isinstance(res, list) else None
        binary = (e.resource or {}) if isinstance(e.resource, dict) else {}
        if ops is None and binary.get("resourceType") == "Binary":
            ops = orjson.loads(base64.b64decode(binary.get("data", "")))
        if not isinstance(ops, list):
            raise BadRequest("a PATCH entry needs a JSON Patch (as a Binary resource)")
        out = u.patch(e.type, e.target_id, ops, if_match=e.if_match)
        return {"response": _response("200 OK", out.stored, base)}
    if e.method == "DELETE":
        if e.target_id is not None:
            u.delete(e.type, e.target_id)
        return {"response": {"status": "204 No Content"}}
    # GET / HEAD: reads and searches inside the transaction
    if e.id is not None and len(e.segments) == 2:
        stored = u.read(e.type, e.id)
        return {"resource": stored.resource, "response": _response("200 OK", stored, base)}
    query = u.repo.parser.parse([e.type], e.query)
    page = u.search(query)
    bundle: dict[str, Any] = {
        "resourceType": "Bundle", "type": "searchset",
        "entry": [
            {"fullUrl": f"{base}/{m.reference}" if base else m.reference, "resource": m.resource,
             "search": {"mode": "match"}}
            for m in page.matches
        ],
    }
    if page.total is not None:
        bundle["total"] = page.total
    return {"resource": bundle, "response": {"status": "200 OK"}}


def run_batch(repo: Repository, ctx: AccessContext, entries_raw: list[Any], base: str = "") -> list[dict[str, Any]]:
    out = []
    for i, raw in enumerate(entries_raw):
        try:
            e = _Entry(i, raw, base)
            if e.type not in RESOURCE_TYPES:
                raise NotFound(f"resource type {e.type!r} is not served here")
            with repo.unit(ctx, write=e.method != "GET") as u:
                if e.method == "POST" and e.if_none_exist:
                    outcome = u.create(dict(e.resource or {}), if_none_exist=e.if_none_exist)
                    status = "201 Created" if outcome.created else "200 OK"
                    out.append({"response": _response(status, outcome.stored, base)})
                    continue
                if e.method in ("PUT", "PATCH", "DELETE") and e.id is None and e.query:
                    found = u.match(e.type, e.query)
                    if len(found) > 1:
                        raise PreconditionFailed(f"the condition matches more than one {e.type}")
                    e.target_id = found[0].id if found else (
                        ((e.resource or {}).get("id") or str(uuid.uuid4())) if e.method == "PUT" else None)
                else:
                    e.target_id = e.id if e.method != "POST" else str(uuid.uuid4())
                out.append(_apply(u, e, {}, base))
        except FhirError as exc:
            out.append({"response": {"status": f"{exc.status} {_REASONS.get(exc.status, '')}".strip(),
                                     "outcome": exc.outcome()}})
    return out


_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
            409: "Conflict", 410: "Gone", 412: "Precondition Failed", 422: "Unprocessable Entity"}
