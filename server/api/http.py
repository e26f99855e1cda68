"""HTTP details of FHIR: media types, JSON bodies, responses and the Prefer header."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from server.fhir.errors import BadRequest, FhirError, NotAcceptable, UnsupportedMediaType, information
from server.store.records import StoredResource

FHIR_JSON = "application/fhir+json; charset=utf-8"
_JSON_TYPES = ("application/fhir+json", "application/json", "application/json-patch+json", "text/json")
_FORMAT_ALIASES = {"json": "json", "application/json": "json", "application/fhir+json": "json",
                   "xml": "xml", "text/xml": "xml", "application/xml": "xml", "application/fhir+xml": "xml",
                   "ttl": "ttl", "text/turtle": "ttl", "html": "html", "text/html": "html"}


def fhir_response(
    body: bytes | dict[str, Any] | None, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    content = body if isinstance(body, bytes) or body is None else orjson.dumps(body)
    return Response(content=content, status_code=status, headers=headers, media_type=FHIR_JSON if content else None)


def error_response(exc: FhirError) -> Response:
    return fhir_response(exc.outcome(), exc.status, dict(exc.headers))


def check_accept(request: Request) -> None:
    """406 for a format other than JSON (``_format`` wins over ``Accept``)."""
    fmt = request.query_params.get("_format")
    if fmt is not None:
        kind = _FORMAT_ALIASES.get(fmt.split(";")[0].strip().lower())
        if kind != "json":
            raise NotAcceptable(f"_format={fmt!r}: this server answers in FHIR JSON only")
        return
    accept = request.headers.get("accept")
    if not accept:
        return
    kinds = [a.split(";")[0].strip().lower() for a in accept.split(",")]
    if any(k in ("*/*", "application/*") or k in _JSON_TYPES for k in kinds):
        return
    raise NotAcceptable(f"Accept: {accept!r}: this server answers in FHIR JSON only (application/fhir+json)")


async def json_body(request: Request) -> Any:
    ctype = request.headers.get("content-type", "application/fhir+json").split(";")[0].strip().lower()
    if ctype and ctype not in _JSON_TYPES:
        raise UnsupportedMediaType(f"Content-Type {ctype!r} is not accepted; send application/fhir+json")
    raw = await request.body()
    if not raw:
        raise BadRequest("the request has no body")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}", code="structure") from None


def prefer_return(request: Request) -> str:
    prefer = request.headers.get("prefer", "")
    for part in prefer.split(";"):
        part = part.strip()
        if part.startswith("return="):
            return part.split("=", 1)[1].strip().strip('"')
    return "representation"


def strict_handling(request: Request) -> bool:
    return "handling=strict" in request.headers.get("prefer", "").replace(" ", "")


def version_headers(stored: StoredResource, location: str | None = None) -> dict[str, str]:
    headers = {"ETag": stored.etag, "Last-Modified": stored.last_modified}
    if location:
        headers["Location"] = location
    return headers


def write_response(request: Request, stored: StoredResource, status: int, location: str | None) -> Response:
    headers = version_headers(stored, location)
    mode = prefer_return(request)
    if mode == "minimal":
        return Response(status_code=status, headers=headers)
    if mode == "OperationOutcome":
        return fhir_response(information(f"{stored.reference} version {stored.version_id} stored"), status, headers)
    return fhir_response(stored.content, status, headers)
