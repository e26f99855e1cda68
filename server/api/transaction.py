"""``POST [base]`` with a batch or transaction Bundle; the processing rules live in
:mod:`server.store.transaction`."""

from __future__ import annotations

import uuid

from starlette.requests import Request
from starlette.responses import Response

from server.api.context import access_context, state
from server.api.http import check_accept, fhir_response, json_body
from server.audit.capture import note_locations, notes
from server.fhir.errors import BadRequest


async def bundle(request: Request) -> Response:
    check_accept(request)
    api, ctx = state(request), access_context(request)
    body = await json_body(request)
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        raise BadRequest("POST to the base takes a Bundle of type batch or transaction")
    kind = body.get("type")
    if kind in ("transaction", "batch"):
        notes(request.scope).subtype = kind
    entries = body.get("entry") or []
    if not isinstance(entries, list):
        raise BadRequest("Bundle.entry must be an array")
    if kind == "transaction":
        results = await api.call(api.repository.transaction, ctx, entries, api.base)
        reply = {"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "transaction-response", "entry": results}
        note_locations(request, results, "transaction")
    elif kind == "batch":
        results = await api.call(api.repository.batch, ctx, entries, api.base)
        reply = {"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "batch-response", "entry": results}
        note_locations(request, results, "batch")
    else:
        raise BadRequest(f"Bundle.type {kind!r}: POST to the base takes batch or transaction")
    return fhir_response(reply)
