"""``GET Patient/{id}/$dialog-trend``: the DIALOG scores and item ratings over time.

The answer is a searchset Bundle of the derived Observations sorted by effective date (as
``Observation/$lastn`` answers a Bundle of Observations), equal to the plain search that
:func:`server.dialog.trend.trend_search` builds; its next link continues that search.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from server.api import bundles
from server.api.context import access_context, state
from server.api.http import check_accept, fhir_response
from server.dialog.trend import trend_search
from server.fhir.errors import BadRequest
from server.search.query import encode_pairs

OPERATION = "https://fhir.carebridge.example/OperationDefinition/dialog-trend"
_KNOWN = ("start", "end", "_since", "_count", "_format", "_pretty")


async def trend(request: Request) -> Response:
    check_accept(request)
    api, ctx = state(request), access_context(request)
    patient_id = request.path_params["id"]
    q = request.query_params
    unknown = sorted({k for k in q if k not in _KNOWN})
    if unknown:
        raise BadRequest(f"$dialog-trend takes start, end, _since and _count, not {', '.join(unknown)}")
    count = q.get("_count")
    if count is not None and not count.isdigit():
        raise BadRequest(f"_count must be a whole number, not {count!r}")
    await api.call(api.repository.read, ctx, "Patient", patient_id)  # 404 when missing or hidden
    params = trend_search(
        patient_id, start=q.get("start") or None, end=q.get("end") or None, since=q.get("_since") or None,
        count=min(int(count), api.settings.max_page_size) if count else api.settings.max_page_size,
    )
    query = api.repository.parse_search(["Observation"], params, strict=True)
    page = await api.call(api.repository.search, ctx, query)
    keep = [(k, v) for k, v in q.multi_items() if k in ("start", "end", "_since", "_count")]
    self_url = f"{api.base}/Patient/{patient_id}/$dialog-trend"
    links = [("self", f"{self_url}?{encode_pairs(keep)}" if keep else self_url)]
    if page.has_next:
        token = api.pages.encode({
            "t": ["Observation"], "q": query.applied, "o": page.next_offset or 0, "a": page.next_after, "s": False,
        })
        links.append(("next", f"{api.base}/Observation?_page={token}"))
    return fhir_response(bundles.searchset(api.base, page, links))
