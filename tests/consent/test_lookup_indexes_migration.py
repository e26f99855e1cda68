"""Migration 0005 on a fresh SQLite file and a fresh PostgreSQL database: the consent look-up
indexes appear on upgrade, match the schema module, and go on downgrade to 0004."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, inspect

from server.store.engine import alembic_config, make_engine, migrate
from server.store.schema import compartment, consent_rule, consent_term
from tests.conftest import _scratch_database

NEW = {"ix_consent_term_value", "ix_consent_rule_unnamed", "ix_compartment_pk_patient"}


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'fresh.sqlite'}")
        yield engine
        engine.dispose()
        return
    with _scratch_database(f"carebridge_mig_{uuid.uuid4().hex[:12]}") as url:
        engine = make_engine(url)
        yield engine
        engine.dispose()


def _alembic(engine: Engine, action: str, revision: str) -> None:
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, action)(cfg, revision)


def _indexes(engine: Engine) -> dict[str, list[str]]:
    found = inspect(engine)
    return {ix["name"]: list(ix["column_names"]) for t in ("compartment", "consent_rule", "consent_term")
            for ix in found.get_indexes(t)}


def test_0005_adds_the_consent_lookup_indexes_and_downgrades(fresh_engine: Engine) -> None:
    _alembic(fresh_engine, "upgrade", "0004")
    assert not NEW & set(_indexes(fresh_engine))
    migrate(fresh_engine)
    declared = {ix.name: [c.name for c in ix.columns] for t in (compartment, consent_rule, consent_term)
                for ix in t.indexes}
    assert _indexes(fresh_engine) == declared
    assert set(declared) >= NEW and "ix_compartment_pk" not in declared
    _alembic(fresh_engine, "downgrade", "0004")
    after = _indexes(fresh_engine)
    assert not NEW & set(after) and after["ix_compartment_pk"] == ["resource_pk"]
