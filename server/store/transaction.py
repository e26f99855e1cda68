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
"""

from __future__ import annotations

import base64
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from server.consent.context import AccessContext
from server.definitions.search_parameters import RESOURCE_TYPES
from server.fhir.dates import from_micros
from server.fhir.errors import BadRequest, FhirError, NotFound, PreconditionFailed
from server.store.records import StoredResource
from server.store.unit import UnitOfWork

if TYPE_CHECKING:
    from server.store.repository import Repository

ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}


def _instant(micros: int) -> str:
    dt = from_micros(micros)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _response(status: str, stored: StoredResource | None, base: str) -> dict[str, Any]:
    out: dict[str, Any] = {"status": status}
    if stored is not None:
        where = f"{stored.resource_type}/{stored.id}/_history/{stored.version_id}"
        out["location"] = f"{base}/{where}" if base else where
        out["etag"] = stored.etag
        out["lastModified"] = _instant(stored.last_updated)
    return out


class _Entry:
    def __init__(self, index: int, raw: Any, base: str):
        if not isinstance(raw, dict):
            raise BadRequest(f"Bundle.entry[{index}] is not an object")
        self.index = index
        self.full_url: str | None = raw.get("fullUrl")
        self.resource: dict[str, Any] | None = raw.get("resource")
        req = raw.get("request")
        if not isinstance(req, dict) or not req.get("method") or not req.get("url"):
            raise BadRequest(f"Bundle.entry[{index}].request needs a method and a url")
        self.method: str = str(req["method"]).upper()
        if self.method not in ORDER:
            raise BadRequest(f"Bundle.entry[{index}].request.method {self.method!r} is not allowed")
        url = str(req["url"])
        if base and url.startswith(base + "/"):
            url = url[len(base) + 1 :]
        self.url = url.lstrip("/")
        self.if_none_exist: str | None = req.get("ifNoneExist")
        self.if_match: str | None = req.get("ifMatch")
        parts = urlsplit(self.url)
        segments = [s for s in parts.path.split("/") if s]
        self.query = parse_qsl(parts.query, keep_blank_values=True)
        self.type = segments[0] if segments else ""
        self.id = segments[1] if len(segments) > 1 else None
        self.segments = segments
        self.target_id: str | None = None

    def where(self) -> str:
        return f"Bundle.entry[{self.index}]"


def _rewrite(value: Any, mapping: dict[str, str]) -> Any:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k == "reference" and isinstance(v, str) and v in mapping:
                out[k] = mapping[v]
            else:
                out[k] = _rewrite(v, mapping)
        return out
    if isinstance(value, list):
        return [_rewrite(v, mapping) for v in value]
    return value


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


def apply_transaction(u: UnitOfWork, entries_raw: list[Any], base: str = "") -> list[dict[str, Any]]:
    """A transaction's entries inside a unit of work the caller owns (so that many
    transactions can share one commit, each in a savepoint of ``Repository.run_batch``)."""
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
    # resolve identities before writing: POST ids, conditional creates, conditional PUTs
    for e in entries:
        if e.type not in RESOURCE_TYPES:
            raise NotFound(f"{e.where()}: resource type {e.type!r} is not served here")
        if e.method in ("POST", "PUT") and not isinstance(e.resource, dict):
            raise BadRequest(f"{e.where()}: {e.method} needs a resource")
        if e.method == "POST":
            if e.if_none_exist:
                found = u.match(e.type, parse_qsl(e.if_none_exist.lstrip("?"), keep_blank_values=True))
                if len(found) > 1:
                    raise PreconditionFailed(f"{e.where()}: ifNoneExist matches more than one {e.type}")
                if found:
                    e.target_id = found[0].id
                    results[e.index] = {"response": _response("200 OK", found[0], base)}
            if e.target_id is None:
                e.target_id = str(uuid.uuid4())
        elif e.method in ("PUT", "PATCH", "DELETE") and e.id is None and e.query:
            found = u.match(e.type, e.query)
            if len(found) > 1:
                raise PreconditionFailed(f"{e.where()}: the condition matches more than one {e.type}")
            if found:
                e.target_id = found[0].id
            elif e.method == "PUT":
                given = (e.resource or {}).get("id")
                e.target_id = given or str(uuid.uuid4())
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
        if e.resource is not None:
            _collect_conditional_refs(e.resource, conditional)
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
        try:
            results[e.index] = _apply(u, e, mapping, base)
        except FhirError as exc:
            exc.diagnostics = f"{e.where()}: {exc.diagnostics}"
            exc.args = (exc.diagnostics,)
            raise
    return [r or {} for r in results]


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
