"""Fixtures shared by the whole suite: real stores (SQLite files, the real PostgreSQL),
the real application over HTTP (ASGI), and tokens signed with a throwaway key.

Every test that takes ``backend`` runs twice: on a fresh SQLite file and on PostgreSQL.
The PostgreSQL run skips, saying why, when no server answers; it never passes silently.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text

from carebridge.config import Settings
from server.api.app import create_app
from server.store.engine import make_engine, migrate
from server.store.schema import metadata

BASE = "http://127.0.0.1:8080"
NHS = "https://fhir.nhs.uk/Id/nhs-number"


def _postgres_admin_url() -> str | None:
    url = os.environ.get("CAREBRIDGE_TEST_POSTGRES_URL")
    if url:
        return url
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    except OSError:
        return None


@pytest.fixture(scope="session")
def var_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("var")


@pytest.fixture(scope="session")
def postgres_url(worker_id: str) -> Iterator[str]:
    """A database of this test run's own on the real PostgreSQL server, dropped afterwards."""
    with _scratch_database(f"carebridge_test_{worker_id}_{uuid.uuid4().hex[:8]}") as url:
        engine = make_engine(url)
        migrate(engine)
        engine.dispose()
        yield url


@contextmanager
def _scratch_database(name: str) -> Iterator[str]:
    """A new database on the real PostgreSQL server, dropped afterwards; skips when none answers."""
    admin = _postgres_admin_url()
    if admin is None:
        pytest.skip("PostgreSQL tests need a server: none answers on 127.0.0.1:5432 "
                    "and CAREBRIDGE_TEST_POSTGRES_URL is not set")
    admin_engine = create_engine(make_url(admin), isolation_level="AUTOCOMMIT")
    try:
        with admin_engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # an answering server that refuses us is a failure, not a skip
        raise RuntimeError(f"cannot create a test database on {admin}: {exc}") from exc
    try:
        yield make_url(admin).rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin_engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin_engine.dispose()


def make_url(url: str) -> str:
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _truncate(url: str) -> None:
    engine = make_engine(url)
    names = ", ".join(t.name for t in metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty, migrated store URL: a new SQLite file, or the PostgreSQL test database emptied."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite'}"
    url: str = request.getfixturevalue("postgres_url")
    _truncate(url)
    return url


@pytest.fixture
def settings(backend: str, var_dir: Path) -> Settings:
    return Settings(database_url=backend, var_dir=var_dir, host="127.0.0.1", port=8080)


@pytest.fixture
def app(settings: Settings) -> Any:
    return create_app(settings)


class Fhir:
    """A FHIR client over the app: JSON in and out, with a bearer token."""

    def __init__(self, client: TestClient, token: str | None):
        self.client = client
        self.token = token

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        h = {"Accept": "application/fhir+json"}
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        h.update(extra or {})
        return h

    def request(self, method: str, path: str, *, json: Any = None, headers: dict[str, str] | None = None,
                **kw: Any) -> Any:
        url = path if path.startswith("http") else f"/fhir/{path.lstrip('/')}" if path else "/fhir"
        h = self.headers(headers)
        if json is not None:
            h.setdefault("Content-Type", "application/fhir+json")
            import orjson

            kw["content"] = orjson.dumps(json)
        return self.client.request(method, url, headers=h, **kw)

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, json: Any = None, **kw: Any) -> Any:
        return self.request("POST", path, json=json, **kw)

    def put(self, path: str, json: Any = None, **kw: Any) -> Any:
        return self.request("PUT", path, json=json, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.request("DELETE", path, **kw)

    def create(self, resource: dict[str, Any]) -> dict[str, Any]:
        r = self.post(resource["resourceType"], resource)
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    def as_(self, token: str | None) -> Fhir:
        return Fhir(self.client, token)


@pytest.fixture
def token_for(app: Any):  # type: ignore[no-untyped-def]
    def make(scope: str = "system/*.cruds", **claims: Any) -> str:
        return app.state.api.tokens.issue(claims.pop("client", "test-client"), scope, **claims)  # type: ignore[no-any-return]
    return make


@pytest.fixture
def fhir(app: Any, token_for: Any) -> Iterator[Fhir]:
    with TestClient(app, base_url=BASE) as client:
        yield Fhir(client, token_for())


def patient(nhs: str | None = "9990000018", family: str = "Smith", given: str = "Jane", **extra: Any) -> dict[str, Any]:
    res: dict[str, Any] = {"resourceType": "Patient", "name": [{"family": family, "given": [given]}]}
    if nhs:
        res["identifier"] = [{"system": NHS, "value": nhs}]
    res.update(extra)
    return res


def nhs_number(n: int) -> str:
    """The n-th valid NHS number in the 999 test range."""
    from server.fhir.nhs_number import check_digit

    found = 0
    base = 999_000_000
    while True:
        nine = str(base + found + n * 7)
        digit = check_digit(nine)
        if digit is not None:
            return nine + str(digit)
        found += 1


# -- one store per test module: load the data once, query it many times ---------------------------
@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def module_backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh store kept for a whole module: a SQLite file, or a PostgreSQL database of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('module') / 'store.sqlite'}"
        return
    with _scratch_database(f"carebridge_mod_{uuid.uuid4().hex[:12]}") as url:
        yield url


@pytest.fixture(scope="module")
def module_app(module_backend: str, var_dir: Path) -> Any:
    return create_app(Settings(database_url=module_backend, var_dir=var_dir, host="127.0.0.1", port=8080))


@pytest.fixture(scope="module")
def module_fhir(module_app: Any) -> Iterator[Fhir]:
    """A client over a store shared by the module's tests (which must not change its data)."""
    with TestClient(module_app, base_url=BASE) as client:
        yield Fhir(client, module_app.state.api.tokens.issue("test-client", "system/*.cruds"))


# -- migrations: an empty database nothing has migrated yet ----------------------------------------
@pytest.fixture(params=["sqlite", "postgres"])
def fresh_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on an empty database (a new SQLite file, or a PostgreSQL database of its own)."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'fresh.sqlite'}")
        yield engine
        engine.dispose()
        return
    with _scratch_database(f"carebridge_mig_{uuid.uuid4().hex[:12]}") as url:
        engine = make_engine(url)
        yield engine
        engine.dispose()


def alembic_step(engine: Engine, action: str, revision: str) -> None:
    """Run Alembic's ``upgrade`` or ``downgrade`` to ``revision`` on ``engine``."""
    from alembic import command

    from server.store.engine import alembic_config

    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, action)(cfg, revision)
