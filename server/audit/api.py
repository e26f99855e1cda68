"""``/fhir/AuditEvent``: read and search of the audit store, for auditors.

AuditEvents live in a store of their own (see :mod:`server.audit.store`), so these routes
stand in front of the generic ``{type}`` ones and run the same search engine over the
audit repository. AuditEvents are written by the server only: every other interaction
answers 405.

Who may see AuditEvents is the consent policy's decision
(:meth:`~server.consent.policy.AccessPolicy.is_auditor`), applied by the audit repository
like any other visibility: to anyone else the trail is empty and every event unknown.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from server.api import interactions as rest
from server.api.context import access_context, state
from server.api.http import check_accept, fhir_response, version_headers
from server.fhir.errors import MethodNotAllowed
from server.store.repository import Repository


def _repository(request: Request) -> Repository:
    api = state(request)
    return api.audit.store if api.audit is not None else api.repository


async def read(request: Request) -> Response:
    check_accept(request)
    api, ctx = state(request), access_context(request)
    stored = await api.call(_repository(request).read, ctx, "AuditEvent", request.path_params["id"])
    return fhir_response(stored.content, 200, version_headers(stored))


async def search(request: Request) -> Response:
    check_accept(request)
    pairs = await rest.search_parameters(request)
    return await rest.search_in(request, _repository(request), ["AuditEvent"], pairs,
                                f"{state(request).base}/AuditEvent")


async def written_by_the_server(request: Request) -> Response:
    raise MethodNotAllowed("AuditEvents are recorded by the server: read and search them; "
                           "they are not written, and have no history, through the API")


ROUTES = [
    ("GET", "/fhir/AuditEvent/_history", written_by_the_server),
    ("GET", "/fhir/AuditEvent/{id}/_history", written_by_the_server),
    ("GET", "/fhir/AuditEvent/{id}/_history/{vid}", written_by_the_server),
    ("POST", "/fhir/AuditEvent/_search", search),
    ("GET", "/fhir/AuditEvent/{id}", read),
    ("GET", "/fhir/AuditEvent", search),
    *((m, "/fhir/AuditEvent", written_by_the_server) for m in ("POST", "PUT", "DELETE")),
    *((m, "/fhir/AuditEvent/{id}", written_by_the_server) for m in ("PUT", "PATCH", "DELETE")),
]
