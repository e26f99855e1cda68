"""What every request handler needs: the settings, the repository, and who is asking."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from anyio import to_thread
from starlette.requests import Request

from carebridge.config import Settings
from server.api.paging import PageSigner
from server.auth.clients import ClientRegistry
from server.auth.tokens import TokenService
from server.consent.context import AccessContext
from server.fhir.errors import Unauthorized
from server.store.group_commit import GroupCommitter
from server.store.repository import Repository
from server.store.unit import UnitOfWork

if TYPE_CHECKING:
    from server.audit.trail import AuditTrail

T = TypeVar("T")


class TokenEventHook(Protocol):
    """Told of every ``/auth/token`` answer: ``outcome`` is ``"issued"`` or the OAuth error
    code, ``reason`` why it was refused (None when issued), ``grant`` the issued token's
    :class:`~server.auth.backend_services.Grant`. ``client_id`` is the id the request
    claimed, unverified when the refusal came before the signature was checked. Nothing
    passed here is secret: no assertion and no access token."""

    def __call__(self, client_id: str | None, outcome: str, reason: str | None, request: Request, *,
                 grant: Any = None) -> None: ...


def no_token_event(client_id: str | None, outcome: str, reason: str | None, request: Request, *,
                   grant: Any = None) -> None:
    """The default :class:`TokenEventHook`: nothing."""


@dataclass
class ApiState:
    settings: Settings
    repository: Repository
    tokens: TokenService
    pages: PageSigner
    #: run store calls on the event loop (SQLite: short, local calls) or on worker threads
    inline_store: bool = True
    #: batches concurrent single-resource writes into one commit (SQLite)
    writes: GroupCommitter | None = None
    #: registered SMART Backend Services clients (``/auth/token``)
    clients: ClientRegistry | None = None
    #: called on every token issue and refusal (the audit trail hooks in here)
    on_token_event: TokenEventHook = no_token_event
    #: the audit trail (None: audit off)
    audit: AuditTrail | None = None

    @property
    def base(self) -> str:
        return self.settings.fhir_base_url

    @property
    def token_url(self) -> str:
        """The token endpoint's URL: the ``aud`` every client assertion must name."""
        return self.settings.token_url

    async def write(self, ctx: AccessContext, fn: Callable[[UnitOfWork], T]) -> T:
        """Run one write in a transaction of its own, or in a savepoint of a group commit."""
        if self.writes is not None:
            return await self.writes.submit(ctx, fn)
        return await self.call(self.repository.write, ctx, fn)

    async def call(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        if self.inline_store:
            return fn(*args, **kwargs)
        return await to_thread.run_sync(lambda: fn(*args, **kwargs))


def state(request: Request) -> ApiState:
    api: ApiState = request.app.state.api
    return api


def request_id(request: Request) -> str | None:
    return request.headers.get("x-request-id")


#: where the request's verified caller is kept for the layers around the handler
ACCESS_SCOPE_KEY = "carebridge.access"
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="carebridge", error="invalid_token"'}


def access_context(request: Request) -> AccessContext:
    """The caller, from the bearer token; 401 with a challenge when there is none or it is bad."""
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("this endpoint needs an access token (Authorization: Bearer ...)",
                           headers={"WWW-Authenticate": 'Bearer realm="carebridge"'})
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>'", headers=CHALLENGE)
    try:
        ctx = state(request).tokens.verify(token.strip(), request_id(request))
    except Unauthorized as exc:
        exc.headers = CHALLENGE
        raise
    # kept on the request for what happens after the handler (break-glass notice, audit)
    request.scope[ACCESS_SCOPE_KEY] = ctx
    return ctx
