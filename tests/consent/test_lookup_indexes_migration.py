"""Migration 0005 on a fresh SQLite file and a fresh PostgreSQL database: the consent look-up
indexes appear on upgrade, match the schema module, and go on downgrade to 0004."""

from __future__ import annotations

from sqlalchemy import Engine, inspect

from server.store.engine import migrate
from server.store.schema import compartment, consent_rule, consent_term
from tests.conftest import alembic_step

NEW = {"ix_consent_term_value", "ix_consent_rule_unnamed", "ix_compartment_pk_patient"}



def _indexes(engine: Engine) -> dict[str, list[str]]:
    found = inspect(engine)
    return {ix["name"]: list(ix["column_names"]) for t in ("compartment", "consent_rule", "consent_term")
            for ix in found.get_indexes(t)}


def test_0005_adds_the_consent_lookup_indexes_and_downgrades(fresh_engine: Engine) -> None:
    alembic_step(fresh_engine, "upgrade", "0004")
    assert not NEW & set(_indexes(fresh_engine))
    migrate(fresh_engine)
    declared = {ix.name: [c.name for c in ix.columns] for t in (compartment, consent_rule, consent_term)
                for ix in t.indexes}
    assert _indexes(fresh_engine) == declared
    assert set(declared) >= NEW and "ix_compartment_pk" not in declared
    alembic_step(fresh_engine, "downgrade", "0004")
    after = _indexes(fresh_engine)
    assert not NEW & set(after) and after["ix_compartment_pk"] == ["resource_pk"]
