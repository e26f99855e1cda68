"""Migration 0008 on a fresh SQLite file and a fresh PostgreSQL database: each search index
carries ``resource_pk`` after its own columns, matches the schema module, keeps the rows
already indexed, and goes back to its old columns on downgrade to 0007."""

from __future__ import annotations

from sqlalchemy import Engine, inspect, text

from server.store.engine import migrate
from server.store.schema import INDEX_TABLES
from tests.conftest import alembic_step

TABLES = [t.name for t in INDEX_TABLES.values()]


def _indexes(engine: Engine) -> dict[str, list[str]]:
    found = inspect(engine)
    return {ix["name"]: list(ix["column_names"]) for t in TABLES for ix in found.get_indexes(t)}


def test_0008_makes_the_search_indexes_covering_and_downgrades(fresh_engine: Engine) -> None:
    alembic_step(fresh_engine, "upgrade", "0007")
    before = _indexes(fresh_engine)
    assert before["ix_string_norm"] == ["param_id", "norm"]
    with fresh_engine.begin() as conn:
        conn.execute(text("INSERT INTO string_index (resource_pk, param_id, norm, value) "
                          "VALUES (7, 1, 'reid', 'Reid')"))
    migrate(fresh_engine)
    declared = {ix.name: [c.name for c in ix.columns] for t in INDEX_TABLES.values() for ix in t.indexes}
    assert _indexes(fresh_engine) == declared
    for name, columns in declared.items():
        if not name.endswith("_pk"):
            assert columns[-1] == "resource_pk" and columns[:len(before[name])] == before[name], name
    with fresh_engine.connect() as conn:
        assert conn.execute(text("SELECT resource_pk FROM string_index WHERE param_id = 1 AND norm >= 're'")
                            ).scalar_one() == 7
        if fresh_engine.dialect.name == "sqlite":
            plan = " ".join(str(row[-1]) for row in conn.execute(text(
                "EXPLAIN QUERY PLAN SELECT resource_pk FROM string_index WHERE param_id = 1 AND norm >= 're'")))
            assert "COVERING INDEX ix_string_norm" in plan
    alembic_step(fresh_engine, "downgrade", "0007")
    assert _indexes(fresh_engine) == before
