"""Fixtures for the audit trail: the real application with its real audit store (a second
SQLite file, or the ``carebridge_audit`` schema of the PostgreSQL test database)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.auditevent import AuditEvent
from joserfc import jwt
from sqlalchemy import text

from carebridge.config import Settings
from server.api.app import create_app
from server.audit.cli import AUDITOR
from server.audit.store import PG_SCHEMA
from server.auth.tokens import AUDIENCE, ISSUER
from server.store.repository import Repository
from server.store.schema import metadata
from server.validation.resource import ResourceValidator
from tests.conftest import BASE, Fhir

AUDITOR_SCOPE = "system/*.cruds system/AuditEvent.rs"
VALIDATOR = ResourceValidator()


def _empty_audit_schema(url: str) -> None:
    from server.store.engine import make_engine

    engine = make_engine(url)
    with engine.begin() as conn:
        present = conn.execute(text("SELECT 1 FROM information_schema.tables WHERE table_schema = :s "
                                    "AND table_name = 'resource'"), {"s": PG_SCHEMA}).first()
        if present:
            names = ", ".join(f'"{PG_SCHEMA}".{t.name}' for t in metadata.sorted_tables
                              if t.name != "search_param_state")
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY"))
    engine.dispose()


@pytest.fixture
def audit_settings(backend: str, var_dir: Any, tmp_path: Any) -> Settings:
    if backend.startswith("postgresql"):
        _empty_audit_schema(backend)
    return Settings(database_url=backend, var_dir=tmp_path / "var", host="127.0.0.1", port=8080)


@pytest.fixture
def audited_app(audit_settings: Settings) -> Any:
    return create_app(audit_settings)


class Audited(Fhir):
    """A FHIR client over the app, with the audit trail at hand."""

    app: Any

    @property
    def trail(self) -> Any:
        return self.app.state.api.audit

    def settle(self) -> None:
        self.client.portal.call(self.trail.settle)  # type: ignore[union-attr]

    def events(self, **params: str) -> list[dict[str, Any]]:
        """Every stored AuditEvent matching ``params`` (searched in the audit store directly)."""
        self.settle()
        return stored_events(self.trail.store, **params)

    def event_for(self, request_id: str) -> dict[str, Any]:
        """The one AuditEvent of a request, checked as FHIR R4 (the structure checker and
        fhir.resources) on the way."""
        found = self.events(**{"request-id": request_id})
        assert len(found) == 1, found
        VALIDATOR.validate(found[0])
        AuditEvent.model_validate(found[0])
        return found[0]

    def mint(self, scope: str = "system/*.cruds", **claims: Any) -> str:
        return sign(self.app, claims.pop("client", "test-client"), scope, **claims)

    def as_(self, token: str | None) -> Audited:
        other = Audited(self.client, token)
        other.app = self.app
        return other


def stored_events(store: Repository, **params: str) -> list[dict[str, Any]]:
    pairs = [*params.items(), ("_count", "1000"), ("_sort", "date")]
    page = store.search(AUDITOR, store.parse_search(["AuditEvent"], pairs, strict=True))
    return [m.resource for m in page.matches]


def sign(app: Any, client: str, scope: str, **claims: Any) -> str:
    """A bearer token the app accepts, with any claims (``break_glass_reason`` included)."""
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": client, "client_id": client, "scope": scope,
            "iat": now, "exp": now + 600, "jti": uuid.uuid4().hex}
    body.update({k: v for k, v in claims.items() if v is not None})
    return jwt.encode({"alg": "RS256", "typ": "JWT"}, body, app.state.api.tokens.key)


@pytest.fixture
def audited(audited_app: Any) -> Iterator[Audited]:
    with TestClient(audited_app, base_url=BASE) as client:
        fhir = Audited(client, None)
        fhir.app = audited_app
        fhir.token = fhir.mint(AUDITOR_SCOPE, fhirUser="Practitioner/dr-khan", organization="RT5",
                               purpose_of_use="TREAT")
        yield fhir


def rid() -> str:
    return f"req-{uuid.uuid4().hex[:12]}"
