"""``POST /auth/token``: the SMART Backend Services token endpoint over HTTP.

The form goes to :class:`server.auth.backend_services.BackendServices`; the answer is the
OAuth JSON of RFC 6749 §5.1 or §5.2 (``invalid_client`` 401, every other error 400), never
cached. Every issue and refusal is handed to ``ApiState.on_token_event`` and logged
without the assertion or the token.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import parse_qsl

import orjson
from anyio import to_thread
from starlette.requests import Request
from starlette.responses import Response

from server.api.context import ApiState, state
from server.auth.backend_services import BackendServices, OAuthError
from server.auth.clients import ClientRegistry

log = logging.getLogger("carebridge.auth")

FORM = "application/x-www-form-urlencoded"
MAX_BODY = 64 * 1024
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _json(body: dict[str, Any], status: int) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=NO_STORE)


def registry(api: ApiState) -> ClientRegistry:
    if api.clients is None:
        api.clients = ClientRegistry(api.repository.engine)
    return api.clients


async def token(request: Request) -> Response:
    api = state(request)
    try:
        form = await _form(request)
        service = BackendServices(registry(api), api.tokens, api.token_url, api.base)
        # a worker thread even on SQLite: the replay check writes, and token requests are rare
        access_token, grant = await to_thread.run_sync(service.grant, form, time.time())
    except OAuthError as exc:
        log.info("token refused: client=%r error=%s reason=%r", exc.client_id, exc.error, exc.reason)
        api.on_token_event(exc.client_id, exc.error, exc.reason, request)
        return _json(exc.body(), exc.status)
    log.info("token issued: client=%r scope=%s purpose=%s expires_in=%d", grant.client.client_id, grant.scope,
             grant.purpose_of_use, grant.expires_in)
    api.on_token_event(grant.client.client_id, "issued", None, request, grant=grant)
    return _json(grant.body(access_token), 200)


async def _form(request: Request) -> list[tuple[str, str]]:
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype != FORM:
        raise OAuthError("invalid_request", f"the token request must be {FORM}")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY:
        raise OAuthError("invalid_request", "the token request is too large")
    body = await request.body()
    if len(body) > MAX_BODY:
        raise OAuthError("invalid_request", "the token request is too large")
    try:
        return parse_qsl(body.decode("ascii"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        raise OAuthError("invalid_request", "the token request is not a valid form") from None
