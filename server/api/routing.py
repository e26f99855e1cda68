"""Dispatch of ``/fhir`` requests: a table of (method, path pattern) -> handler.

The FHIR surface is a fixed, small set of URL shapes whose handlers take a Starlette
``Request`` and return a ``Response``; they need none of FastAPI's per-route machinery
(dependency resolution, body models, the exception-handler and exit-stack middlewares).
Profiling a read by id showed that machinery at about a third of the request's CPU, so
``/fhir`` is matched here, directly under the application, and everything else (the
token endpoint, pages) stays with FastAPI's router.

Patterns are matched in table order, fixed segments before ``{placeholders}``. A path that
matches a pattern for another method answers 405; one that matches nothing answers 404.
Every error leaves as an OperationOutcome, and every answer carries ``X-Request-Id``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from server.api.context import ACCESS_SCOPE_KEY
from server.api.http import error_response
from server.consent.callers import caller_of
from server.fhir.errors import FhirError, MethodNotAllowed, NotFound

log = logging.getLogger("carebridge.api")

Handler = Callable[[Request], Awaitable[Response]]
BREAK_GLASS_NOTICE = b"break-glass access: this request is recorded and reported to the privacy officer"


class _Pattern:
    __slots__ = ("handler", "method", "parts")

    def __init__(self, method: str, path: str, handler: Handler) -> None:
        self.method = method
        # each part is (is_placeholder, literal text or placeholder name)
        self.parts = tuple(
            (True, p[1:-1]) if p.startswith("{") and p.endswith("}") else (False, p)
            for p in path.strip("/").split("/")
        )
        self.handler = handler

    def bind(self, segments: Sequence[str]) -> dict[str, str] | None:
        params: dict[str, str] = {}
        for (placeholder, text), seg in zip(self.parts, segments, strict=True):
            if placeholder:
                if not seg:
                    return None
                params[text] = seg
            elif seg != text:
                return None
        return params


class FhirRouter:
    """Finds the handler for a method and path; raises 404/405 as FHIR errors."""

    def __init__(self, routes: Sequence[tuple[str, str, Handler]]) -> None:
        self._by_length: dict[int, list[_Pattern]] = {}
        for method, path, handler in routes:
            pattern = _Pattern(method, path, handler)
            self._by_length.setdefault(len(pattern.parts), []).append(pattern)

    def match(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        segments = path.strip("/").split("/")
        wanted = "GET" if method == "HEAD" else method
        path_matched = False
        for pattern in self._by_length.get(len(segments), ()):
            params = pattern.bind(segments)
            if params is None:
                continue
            if pattern.method == wanted:
                return pattern.handler, params
            path_matched = True
        if path_matched:
            raise MethodNotAllowed(f"{method} is not supported on {path}")
        raise NotFound(f"nothing is served at {path}", code="not-supported")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        rid = next((v for k, v in scope["headers"] if k == b"x-request-id"), None)
        if rid is None:
            rid = uuid.uuid4().hex.encode()
            scope["headers"] = [*scope["headers"], (b"x-request-id", rid)]
        try:
            handler, params = self.match(scope["method"], scope["path"])
            scope["path_params"] = params
            response = await handler(Request(scope, receive))
        except FhirError as exc:
            response = error_response(exc)
        except Exception:
            log.exception("unexpected error on %s %s", scope["method"], scope["path"])
            response = error_response(
                FhirError("the server failed to process the request", status=500, code="exception")
            )
        response.raw_headers.append((b"x-request-id", rid))
        ctx = scope.get(ACCESS_SCOPE_KEY)
        if ctx is not None and caller_of(ctx).break_glass:
            # the caller is told, on every answer, that the glass is broken and audited
            response.raw_headers.append((b"x-break-glass", BREAK_GLASS_NOTICE))
        await response(scope, receive, send)
