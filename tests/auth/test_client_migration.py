"""Migration 0004 on a fresh SQLite file and a fresh PostgreSQL database: the registry's
tables appear on upgrade, match the schema module, go on downgrade to 0003 and come back."""

from __future__ import annotations

from joserfc.jwk import ECKey
from sqlalchemy import Engine, inspect

from server.auth.clients import Client, ClientRegistry
from server.store.engine import migrate
from server.store.schema import auth_assertion_jti, auth_client
from tests.auth.conftest import public_jwks
from tests.conftest import alembic_step

TABLES = {"auth_client", "auth_assertion_jti"}



def test_0004_creates_the_registry_tables_and_downgrades(fresh_engine: Engine, ec_key: ECKey) -> None:
    alembic_step(fresh_engine, "upgrade", "0003")
    assert not TABLES & set(inspect(fresh_engine).get_table_names())
    migrate(fresh_engine)
    found = inspect(fresh_engine)
    assert set(found.get_table_names()) >= TABLES
    for table in (auth_client, auth_assertion_jti):
        assert {c["name"] for c in found.get_columns(table.name)} == {c.name for c in table.columns}
        assert set(found.get_pk_constraint(table.name)["constrained_columns"]) == {
            c.name for c in table.primary_key.columns}
    assert {ix["name"] for ix in found.get_indexes("auth_assertion_jti")} == {"ix_auth_assertion_jti_expires"}

    registry = ClientRegistry(fresh_engine)
    assert registry.save(Client("c1", "one", "RT5", ("system/*.rs",), jwks=public_jwks(ec_key)))
    assert registry.get("c1") is not None
    assert registry.use_jti("c1", "j1", 2_000_000_000, 1_000.0)
    assert not registry.use_jti("c1", "j1", 2_000_000_000, 1_000.0)
    assert registry.use_jti("c2", "j1", 2_000_000_000, 1_000.0)  # jti values are per client

    alembic_step(fresh_engine, "downgrade", "0003")
    assert not TABLES & set(inspect(fresh_engine).get_table_names())
    migrate(fresh_engine)
    assert set(inspect(fresh_engine).get_table_names()) >= TABLES
    assert ClientRegistry(fresh_engine).all() == []
