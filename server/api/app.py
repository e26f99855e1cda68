"""The application: routes, error handling and the objects each request uses.

FHIR routes are a table (method, path) -> handler, in the order they must be matched:
fixed paths before ``{type}/{id}``; :class:`~server.api.routing.FhirRouter` dispatches
them. Errors of every kind leave as an OperationOutcome.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from carebridge.config import Settings
from server.api import access_report, conformance, oauth, package_pages, transaction, validate
from server.api import dialog as dialog_api
from server.api import interactions as rest
from server.api.capability import capability_statement, smart_configuration
from server.api.context import ApiState, state
from server.api.http import check_accept, error_response, fhir_response
from server.api.paging import PageSigner
from server.api.routing import FhirRouter
from server.audit import api as audit_api
from server.audit.trail import AuditMiddleware, trail_for
from server.auth.clients import ClientRegistry
from server.auth.keys import link_secret
from server.auth.tokens import TokenService
from server.definitions.package import CONFORMANCE_TYPES
from server.definitions.search_parameters import default_registry
from server.fhir.errors import FhirError, MethodNotAllowed, NotFound
from server.store.checkpoint import start_background_checkpoints, stop_background_checkpoints
from server.store.engine import make_engine, migrate
from server.store.group_commit import GroupCommitter
from server.store.reindex import check_definitions
from server.store.repository import Repository

log = logging.getLogger("carebridge.api")


async def metadata(request: Request) -> Response:
    check_accept(request)
    api = state(request)
    return fhir_response(capability_statement(api.base, _token_url(api), api.repository.registry))


async def smart_config(request: Request) -> Response:
    return Response(
        content=__import__("orjson").dumps(smart_configuration(_token_url(state(request)))),
        media_type="application/json",
    )


def _token_url(api: ApiState) -> str:
    return api.token_url


def _conformance_routes() -> list[tuple[str, str, Any]]:
    """The package's conformance resources: read and search, every write refused."""
    routes: list[tuple[str, str, Any]] = []
    for rtype in CONFORMANCE_TYPES:
        routes += [
            ("GET", f"/fhir/{rtype}/{{id}}", conformance.read),
            ("GET", f"/fhir/{rtype}", conformance.search),
            *((method, f"/fhir/{rtype}", conformance.read_only) for method in ("POST", "PUT", "DELETE")),
            *((method, f"/fhir/{rtype}/{{id}}", conformance.read_only) for method in ("PUT", "PATCH", "DELETE")),
        ]
    return routes


#: pages for people, served by FastAPI's router (no token: the package is public)
PAGE_ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/profiles", package_pages.index),
    ("GET", "/profiles/{page}", package_pages.resource_page),
]

#: OAuth endpoints, also on FastAPI's router (they answer OAuth JSON, not FHIR)
AUTH_ROUTES: list[tuple[str, str, Any]] = [
    ("POST", "/auth/token", oauth.token),
]

ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/fhir/metadata", metadata),
    ("GET", "/fhir/.well-known/smart-configuration", smart_config),
    ("POST", "/fhir/$validate", validate.validate),
    ("POST", "/fhir/{type}/$validate", validate.validate),
    *_conformance_routes(),
    ("POST", "/fhir", transaction.bundle),
    ("GET", "/fhir", rest.search_system),
    ("GET", "/fhir/_history", rest.history),
    ("GET", "/fhir/Patient/{id}/$everything", rest.everything),
    ("GET", "/fhir/Patient/{id}/$dialog-trend", dialog_api.trend),
    ("GET", "/fhir/Patient/{id}/$access-report", access_report.report),
    *audit_api.ROUTES,
    ("GET", "/fhir/{type}/_history", rest.history),
    ("POST", "/fhir/{type}/_search", rest.search_type),
    ("GET", "/fhir/{type}/{id}/_history/{vid}", rest.vread),
    ("GET", "/fhir/{type}/{id}/_history", rest.history),
    ("GET", "/fhir/{type}/{id}", rest.read),
    ("PUT", "/fhir/{type}/{id}", rest.update),
    ("PATCH", "/fhir/{type}/{id}", rest.patch),
    ("DELETE", "/fhir/{type}/{id}", rest.delete),
    ("GET", "/fhir/{type}", rest.search_type),
    ("POST", "/fhir/{type}", rest.create),
    ("PUT", "/fhir/{type}", rest.conditional_update),
    ("DELETE", "/fhir/{type}", rest.conditional_delete),
]


def build_state(settings: Settings) -> ApiState:
    engine = make_engine(settings.database_url)
    migrate(engine)
    registry = default_registry()
    check_definitions(engine, registry)
    start_background_checkpoints(engine)
    repository = Repository(
        engine, registry, base_url=settings.fhir_base_url,
        default_page_size=settings.default_page_size, max_page_size=settings.max_page_size,
    )
    repository.validator.warm()
    sqlite = engine.dialect.name == "sqlite"
    clients = ClientRegistry(engine)
    api = ApiState(
        settings=settings,
        repository=repository,
        tokens=TokenService(settings.var_dir, client_disabled=clients.is_disabled),
        clients=clients,
        pages=PageSigner(link_secret(settings.var_dir)),
        inline_store=sqlite,
        writes=GroupCommitter(repository) if sqlite else None,
    )
    api.audit = trail_for(settings, repository)
    if api.audit is not None:
        api.on_token_event = api.audit.token_event
    return api


class CarebridgeApp(FastAPI):
    """FastAPI for the service's own endpoints; ``/fhir`` goes straight to the FHIR router."""

    fhir: Any  # the FhirRouter, wrapped by the audit trail

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if path == "/fhir" or path.startswith("/fhir/"):
                scope["app"] = self
                await self.fhir(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings, api_state: ApiState | None = None) -> FastAPI:
    api = api_state or build_state(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if api.audit is not None:
            await api.audit.start()
        yield
        if api.audit is not None:
            await api.audit.close()  # drains the queue: nothing recorded is lost on a clean stop
        stop_background_checkpoints(api.repository.engine)
        api.repository.engine.dispose()

    app = CarebridgeApp(
        title="carebridge", version="0.1.0", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan,
    )
    app.state.api = api
    app.fhir = FhirRouter(ROUTES) if api.audit is None else AuditMiddleware(FhirRouter(ROUTES), api.audit)
    for method, path, handler in [*PAGE_ROUTES, *AUTH_ROUTES]:
        app.add_api_route(path, handler, methods=[method], include_in_schema=False)

    @app.exception_handler(FhirError)
    async def _fhir_error(request: Request, exc: FhirError) -> Response:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 405:
            return error_response(MethodNotAllowed(f"{request.method} is not supported on {request.url.path}"))
        if exc.status_code == 404:
            return error_response(NotFound(f"nothing is served at {request.url.path}", code="not-supported"))
        return error_response(FhirError(str(exc.detail), status=exc.status_code, code="processing"))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(FhirError("the server failed to process the request", status=500, code="exception"))

    app.add_middleware(RequestIdMiddleware)
    return app


class RequestIdMiddleware:
    """Echo ``X-Request-Id`` (or give each request one), as plain ASGI: no per-request task."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = next((v for k, v in scope["headers"] if k == b"x-request-id"), None)
        if rid is None:
            rid = uuid.uuid4().hex.encode()
            scope["headers"] = [*scope["headers"], (b"x-request-id", rid)]

        async def send_with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid)]
            await send(message)

        await self.app(scope, receive, send_with_id)
