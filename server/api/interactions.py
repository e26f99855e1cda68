"""The FHIR REST interactions, each a thin translation from HTTP to one repository call."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from server.api import bundles
from server.api.context import ApiState, access_context, state
from server.api.http import (
    check_accept,
    fhir_response,
    json_body,
    strict_handling,
    version_headers,
    write_response,
)
from server.audit.capture import note
from server.definitions.search_parameters import RESOURCE_TYPES
from server.fhir.errors import BadRequest, MethodNotAllowed, NotFound, Unprocessable, information
from server.search.query import encode_pairs, params_from_pairs
from server.store.repository import Repository
from server.store.unit import prepare

#: fixed paths of the base that the ``{type}`` routes also match (with other methods)
_SYSTEM_PATHS = frozenset({"metadata", "_history", "_search", ".well-known"})


def resource_type(name: str) -> str:
    if name not in RESOURCE_TYPES:
        if name in _SYSTEM_PATHS:
            raise MethodNotAllowed(f"/{name} does not support this method")
        if name.startswith("$"):
            raise NotFound(f"operation {name} is not supported", code="not-supported")
        raise NotFound(f"resource type {name!r} is not served here", code="not-supported")
    return name


def _check_id(rtype: str, id: str) -> None:
    if id.startswith("$"):
        raise NotFound(f"operation {id} is not supported on {rtype}", code="not-supported")


def _location(api: ApiState, rtype: str, id: str, version: int) -> str:
    return f"{api.base}/{rtype}/{id}/_history/{version}"


# -- instance level ------------------------------------------------------------------------
async def read(request: Request) -> Response:
    check_accept(request)
    api, ctx = state(request), access_context(request)
    rtype, id = resource_type(request.path_params["type"]), request.path_params["id"]
    _check_id(rtype, id)
    stored = await api.call(api.repository.read, ctx, rtype, id)
    note(request, (stored,))
    if_none_match = request.headers.get("if-none-match")
    if if_none_match and if_none_match.strip() == stored.etag:
        return Response(status_code=304, headers=version_headers(stored))
    summary = request.query_params.get("_summary")
    elements = request.query_params.get("_elements")
    if summary in (None, "false") and not elements:
        return fhir_response(stored.content, 200, version_headers(stored))
    from server.search.summary import apply_summary

    body = apply_summary(stored.resource, summary, [e for e in (elements or "").split(",") if e])
    return fhir_response(body, 200, version_headers(stored))


async def vread(request: Request) -> Response:
    check_accept(request)
    api, ctx = state(request), access_context(request)
    rtype, id = resource_type(request.path_params["type"]), request.path_params["id"]
    stored = await api.call(api.repository.vread, ctx, rtype, id, request.path_params["vid"])
    note(request, (stored,))
    return fhir_response(stored.content, 200, version_headers(stored))


async def update(request: Request) -> Response:
    check_accept(request)
    api, ctx = state(request), access_context(request)
    rtype, id = resource_type(request.path_params["type"]), request.path_params["id"]
    _check_id(rtype, id)
    body = await json_body(request)
    prepared = prepare(api.repository, body, rtype)
    if_match = request.headers.get("if-match")
    outcome = await api.write(ctx, lambda u: u.update(rtype, id, body, if_match=if_match, prepared=prepared))
    stored = outcome.stored
    note(request, (stored,), created=outcome.created)
    status = 201 if outcome.created else 200
    return write_response(request, stored, status, _location(api, rtype, stored.id, stored.version_id))


async def patch(request: Request) -> Response:
    check_accept(request)
    api, ctx = state(request), access_context(request)
    rtype, id = resource_type(request.path_params["type"]), request.path_params["id"]
    ctype = request.headers.get("content-type", "").split(";")[0].strip()
    if ctype != "application/json-patch+json":
        raise BadRequest("PATCH takes a JSON Patch (Content-Type: application/json-patch+json)",
                         status=415, code="not-supported")
    ops = await json_body(request)
    if not isinstance(ops, list):
        raise BadRequest("a JSON Patch is an array of operations")
    if_match = request.headers.get("if-match")
    outcome = await api.write(ctx, lambda u: u.patch(rtype, id, ops, if_match=if_match))
    note(request, (outcome.stored,))
    return write_response(request, outcome.stored, 200, _location(api, rtype, id, outcome.stored.version_id))


async def delete(request: Request) -> Response:
    api, ctx = state(request), access_context(request)
    rtype, id = resource_type(request.path_params["type"]), request.path_params["id"]
    _check_id(rtype, id)
    gone = await api.write(ctx, lambda u: u.delete(rtype, id))
    note(request, (gone,) if gone is not None else ())
    headers = {"ETag": gone.etag} if gone is not None else {}
    message = f"{rtype}/{id} deleted" if gone is not None else f"{rtype}/{id} was not there to delete"
    return fhir_response(information(message), 200, headers)


# -- type level ------------------------------------------------------------------------------
async def create(request: Request) -> Response:
    check_accept(request)
    api, ctx = state(request), access_context(request)
    rtype = resource_type(request.path_params["type"])
    body = await json_body(request)
    if isinstance(body, dict) and body.get("resourceType") not in (None, rtype):
        raise Unprocessable(f"the body is a {body.get('resourceType')}, but the URL names {rtype}", code="invalid")
    prepared = prepare(api.repository, body, rtype)
    if_none_exist = request.headers.get("if-none-exist")
    outcome = await api.write(ctx, lambda u: u.create(body, if_none_exist=if_none_exist, prepared=prepared))
    stored = outcome.stored
    note(request, (stored,))
    location = _location(api, rtype, stored.id, stored.version_id)
    return write_response(request, stored, 201 if outcome.created else 200, location)


async def conditional_update(request: Request) -> Response:
    check_accept(request)
    api, ctx = state(request), access_context(request)
    rtype = resource_type(request.path_params["type"])
    query = params_from_pairs(list(request.query_params.multi_items()))
    if not query:
        raise MethodNotAllowed("PUT on a type needs search criteria (conditional update)")
    body = await json_body(request)
    outcome = await api.write(ctx, lambda u: u.conditional_update(rtype, query, body))
    stored = outcome.stored
    note(request, (stored,), created=outcome.created)
    return write_response(request, stored, 201 if outcome.created else 200,
                          _location(api, rtype, stored.id, stored.version_id))


async def conditional_delete(request: Request) -> Response:
    api, ctx = state(request), access_context(request)
    rtype = resource_type(request.path_params["type"])
    query = params_from_pairs(list(request.query_params.multi_items()))
    if not query:
        raise MethodNotAllowed("DELETE on a type needs search criteria (conditional delete)")
    n = await api.write(ctx, lambda u: u.conditional_delete(rtype, query))
    return fhir_response(information(f"{n} {rtype} deleted"), 200)


async def search_parameters(request: Request) -> list[tuple[str, str]]:
    """A search's parameters: the URL's, and for ``POST _search`` the form body's too."""
    pairs = list(request.query_params.multi_items())
    if request.method == "POST":
        ctype = request.headers.get("content-type", "").split(";")[0].strip()
        if ctype not in ("application/x-www-form-urlencoded", ""):
            raise BadRequest("POST _search takes application/x-www-form-urlencoded parameters",
                             status=415, code="not-supported")
        pairs += parse_qsl((await request.body()).decode(), keep_blank_values=True)
    return pairs


async def search_type(request: Request) -> Response:
    check_accept(request)
    rtype = resource_type(request.path_params["type"])
    pairs = await search_parameters(request)
    return await _search(request, [rtype], pairs, f"{state(request).base}/{rtype}")


async def search_system(request: Request) -> Response:
    check_accept(request)
    pairs = list(request.query_params.multi_items())
    types_param = [v for k, v in pairs if k == "_type"]
    if types_param:
        types = [resource_type(t.strip()) for v in types_param for t in v.split(",") if t.strip()]
    elif any(k == "_page" for k, _ in pairs):
        types = []
    else:
        raise BadRequest("a search across all types needs _type (e.g. ?_type=Patient,RelatedPerson)")
    return await _search(request, types, pairs, state(request).base)


async def _search(request: Request, types: list[str], pairs: list[tuple[str, str]], self_base: str) -> Response:
    return await search_in(request, state(request).repository, types, pairs, self_base)


async def search_in(
    request: Request, repository: Repository, types: list[str], pairs: list[tuple[str, str]], self_base: str
) -> Response:
    """A search of ``repository`` (the clinical store, or the audit store for AuditEvent)."""
    api, ctx = state(request), access_context(request)
    offset, after = 0, None
    page_token = next((v for k, v in pairs if k == "_page"), None)
    if page_token is not None:
        page_state = api.pages.decode(page_token)
        types = list(page_state["t"])
        pairs = [tuple(p) for p in page_state["q"]]
        offset, after = int(page_state.get("o", 0)), page_state.get("a")
        self_base = f"{api.base}/{types[0]}" if len(types) == 1 and not page_state.get("s") else api.base
    params = params_from_pairs([(k, v) for k, v in pairs if k not in ("_page", "_format", "_pretty")])
    query = repository.parse_search(types, params, strict=strict_handling(request))
    page = await api.call(repository.search, ctx, query, offset=offset, after=after)
    note(request, (*page.matches, *page.included), query=encode_pairs(query.applied),
         patients=_named_patients(query.applied))
    system = self_base == api.base
    applied = ([("_type", ",".join(types))] if system else []) + query.applied
    links = [("self", f"{self_base}?{encode_pairs(applied)}" if applied else self_base)]
    if page.has_next:
        token = api.pages.encode({
            "t": types, "q": query.applied, "o": page.next_offset or 0, "a": page.next_after, "s": system,
        })
        links.append(("next", f"{self_base}?_page={token}"))
    outcome = None
    if query.ignored:
        outcome = {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "warning", "code": "not-supported",
                       "diagnostics": f"search parameter {name!r} is not known and was ignored"}
                      for name in query.ignored],
        }
    body = bundles.searchset(api.base, page, links, summary=query.summary, elements=query.elements, outcome=outcome)
    return fhir_response(body)


# -- history ------------------------------------------------------------------------------------
async def history(request: Request) -> Response:
    check_accept(request)
    api, ctx = state(request), access_context(request)
    rtype = request.path_params.get("type")
    if rtype is not None:
        resource_type(rtype)
    id = request.path_params.get("id")
    q = request.query_params
    path = "/".join(p for p in (api.base, rtype, id, "_history") if p)
    keep = [(k, v) for k, v in q.multi_items() if k in ("_since", "_at", "_count")]
    before = None
    if q.get("_page"):
        # a next link: the query it was made for, and where the previous page ended
        page_state = api.pages.decode(q["_page"])
        if page_state.get("h") != path:
            raise BadRequest("the paging link belongs to another history")
        keep = [(str(k), str(v)) for k, v in page_state["q"]]
        before = tuple(int(x) for x in page_state["k"])
    params = dict(keep)
    count = _page_size(api, params.get("_count"))
    page = await api.call(api.repository.history, ctx, rtype, id, since=params.get("_since"), at=params.get("_at"),
                          count=count, before=before)
    note(request, page.entries, query=encode_pairs(keep))
    links = [("self", f"{path}?{encode_pairs(keep)}" if keep else path)]
    if page.has_next and page.entries:
        last = page.entries[-1]
        token = api.pages.encode({"h": path, "q": keep, "k": [last.last_updated, last.pk, last.version_id]})
        links.append(("next", f"{path}?_page={token}"))
    return fhir_response(bundles.history(api.base, page, links))


def _page_size(api: ApiState, value: str | None) -> int:
    if value is None or value == "":
        return api.settings.default_page_size
    if not value.isdigit():
        raise BadRequest(f"_count must be a whole number, not {value!r}")
    return min(int(value), api.settings.max_page_size)


async def everything(request: Request) -> Response:
    check_accept(request)
    api, ctx = state(request), access_context(request)
    q = request.query_params
    after = None
    if q.get("_page"):
        page_state = api.pages.decode(q["_page"])
        if page_state.get("p") != request.path_params["id"]:
            raise BadRequest("the paging link belongs to another patient")
        after = int(page_state["a"])
    count = _page_size(api, q.get("_count"))
    page = await api.call(api.repository.everything, ctx, request.path_params["id"], count=count, after=after,
                          since=q.get("_since"))
    note(request, (*page.matches, *page.included), patients=(request.path_params["id"],))
    self_url = f"{api.base}/Patient/{request.path_params['id']}/$everything"
    links = [("self", self_url)]
    if page.has_next:
        token = api.pages.encode({"p": request.path_params["id"], "a": page.next_after})
        links.append(("next", f"{self_url}?_count={count}&_page={token}"))
    return fhir_response(bundles.searchset(api.base, page, links))


#: search parameters whose value names the patient a search is about
_PATIENT_PARAMS = frozenset({"patient", "subject", "beneficiary"})


def _named_patients(applied: list[tuple[str, str]]) -> list[str]:
    """The patients a search names itself (``?patient=1``, ``?subject=Patient/1``)."""
    found = []
    for name, value in applied:
        base = name.split(":", 1)[0]
        if base not in _PATIENT_PARAMS:
            continue
        for v in value.split(","):
            ref = v.rsplit("/_history/", 1)[0]
            if ref.startswith("Patient/") or (base == "patient" and "/" not in ref and ref):
                found.append(ref.rsplit("/", 1)[-1])
    return found


def unsupported(_: Any = None) -> None:
    raise MethodNotAllowed("this interaction is not supported")
