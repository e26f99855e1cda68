"""``$validate`` (system and type level): the OperationOutcome of a resource, never stored.

The body is the resource, or a Parameters with ``resource`` and optional ``profile``
(``valueUri``/``valueCanonical``/``valueString``); ``?profile=`` may be given too, once or
more. The answer is 200 with the issues found, or one ``information`` issue when there
are none; a body that is no resource at all is a 400. Like every endpoint but metadata, it
needs a valid token, whatever its scopes: it reads and writes no data.
"""

from __future__ import annotations

from typing import Any

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import Response

from server.api.context import access_context, state
from server.api.http import check_accept, fhir_response, json_body
from server.fhir.errors import BadRequest
from server.validation.outcome import operation_outcome

_PROFILE_KEYS = ("valueUri", "valueCanonical", "valueString", "valueUrl")


def _unwrap(body: Any) -> tuple[dict[str, Any], list[str]]:
    if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
        raise BadRequest("the body must be a FHIR resource, or a Parameters holding one as 'resource'")
    if body["resourceType"] != "Parameters":
        return body, []
    params = [p for p in body.get("parameter") or [] if isinstance(p, dict)]
    resources = [p.get("resource") for p in params if p.get("name") == "resource"]
    if not resources:
        return body, []  # a Parameters resource to validate as itself
    if len(resources) > 1 or not isinstance(resources[0], dict):
        raise BadRequest("Parameters must hold exactly one 'resource' parameter with a resource in it")
    profiles = [str(p[key]) for p in params if p.get("name") == "profile" for key in _PROFILE_KEYS if key in p]
    return resources[0], profiles


async def validate(request: Request) -> Response:
    check_accept(request)
    access_context(request)
    api = state(request)
    resource, profiles = _unwrap(await json_body(request))
    expected = request.path_params.get("type")
    if expected is not None and resource.get("resourceType") != expected:
        raise BadRequest(f"this is {expected}/$validate, but the resource is a {resource.get('resourceType')!r}")
    profiles += request.query_params.getlist("profile")
    validator = api.repository.validator
    issues = await to_thread.run_sync(lambda: validator.issues(resource, profiles))
    return fhir_response(operation_outcome(issues))
