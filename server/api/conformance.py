"""Read and search of the package's conformance resources under /fhir (read-only).

Like every /fhir interaction but metadata these need a bearer token; the resources are
not patient data, so any valid token may read them.
"""

from __future__ import annotations

import uuid

import orjson
from starlette.requests import Request
from starlette.responses import Response

from server.api.context import access_context, state
from server.api.http import check_accept, fhir_response
from server.definitions.package import SEARCH_CODES, default_package
from server.fhir.dates import now_instant
from server.fhir.errors import BadRequest, MethodNotAllowed, NotFound

_RESULT_PARAMS = frozenset({"_format", "_count", "_summary", "_total"})


def _type(request: Request) -> str:
    return request.url.path.removeprefix("/fhir/").split("/", 1)[0]


async def read(request: Request) -> Response:
    check_accept(request)
    access_context(request)
    rtype, id = _type(request), request.path_params["id"]
    found = default_package().get(rtype, id)
    if found is None:
        raise NotFound(f"{rtype}/{id} is not in the carebridge package")
    version = default_package().manifest["version"]
    return fhir_response(found.content, 200, {"ETag": f'W/"{version}"'})


async def search(request: Request) -> Response:
    check_accept(request)
    access_context(request)
    rtype = _type(request)
    params = [(k, v) for k, v in request.query_params.multi_items() if k not in _RESULT_PARAMS]
    unknown = sorted({k for k, _ in params if k.split(":", 1)[0] not in SEARCH_CODES})
    if unknown:
        raise BadRequest(f"{rtype} is searched by {', '.join(SEARCH_CODES)} here; not by {', '.join(unknown)}")
    found = default_package().search(rtype, params)
    base = state(request).base
    stamp, _ = now_instant()
    query = str(request.url.query)
    bundle = {
        "resourceType": "Bundle", "id": str(uuid.uuid4()), "meta": {"lastUpdated": stamp}, "type": "searchset",
        "total": len(found),
        "link": [{"relation": "self", "url": f"{base}/{rtype}" + (f"?{query}" if query else "")}],
        "entry": [{"fullUrl": f"{base}/{rtype}/{f.id}", "resource": f.resource, "search": {"mode": "match"}}
                  for f in found],
    }
    return fhir_response(orjson.dumps(bundle))


async def read_only(request: Request) -> Response:
    access_context(request)
    raise MethodNotAllowed(f"{_type(request)} resources come from the carebridge FHIR package and are read-only")
