"""How a search runs depends on the store's figures (server/store/statistics.py); what it
returns does not. On SQLite and PostgreSQL: the same pages whichever clause drives, the
driver chosen by the counts, and counts remembered and forgotten as the statistics say."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine

import server.store.unit as unit
from server.consent.context import AccessContext
from server.definitions.search_parameters import default_registry
from server.store.engine import migrate
from server.store.repository import Repository
from server.store.statistics import ClauseCounts, TypeCounts

CTX = AccessContext.system("planner-test")


@pytest.fixture
def repo(fresh_engine: Engine) -> Repository:
    migrate(fresh_engine)
    repo = Repository(fresh_engine, default_registry())
    families = ["Jones"] * 20 + ["Jonas"] * 5 + ["Smith"] * 35
    with repo.unit(CTX) as u:
        for i, family in enumerate(families):
            u.create({"resourceType": "Patient", "name": [{"family": family, "given": [f"P{i}"]}],
                      "gender": "female" if i % 2 else "male"})
    return repo


def _weigh(monkeypatch: pytest.MonkeyPatch, cost: int) -> None:
    """The same weight of a walk's probe on both stores."""
    monkeypatch.setattr(unit, "WALK_PROBE_COST", cost)
    monkeypatch.setattr(unit, "WALK_PROBE_COST_POSTGRESQL", cost)


def _search(repo: Repository, params: list[tuple[str, str]]) -> tuple[list[str], Any]:
    chosen: list[Any] = []
    original = unit.UnitOfWork._choose_driver

    def spy(self: Any, *args: Any, **kw: Any) -> Any:
        chosen.append(original(self, *args, **kw))
        return chosen[-1]

    unit.UnitOfWork._choose_driver = spy  # type: ignore[method-assign]
    try:
        page = repo.search(CTX, repo.parse_search(["Patient"], params))
    finally:
        unit.UnitOfWork._choose_driver = original  # type: ignore[method-assign]
    return [m.id for m in page.matches], chosen[0]


def test_a_prefix_drives_when_reading_its_matches_is_cheaper_than_the_walk(
        repo: Repository, monkeypatch: pytest.MonkeyPatch) -> None:
    params = [("family", "Jon"), ("_count", "10")]
    monkeypatch.setattr(unit, "DRIVER_LIMIT", 5)
    _weigh(monkeypatch, 0)  # every clause of more than 5 rows walks
    walked, driver = _search(repo, params)
    assert driver is None and len(walked) == 10
    repo.clause_counts = ClauseCounts()
    _weigh(monkeypatch, 30)  # 25 rows against sqrt(30 * 11 * 60) = 140
    driven, driver = _search(repo, params)
    assert driver is not None and driver.name == "family"
    assert driven == walked  # the same page, in the same order
    # a clause matching more than the bound walks: gender matches 30 of the 60
    _weigh(monkeypatch, 1)  # sqrt(1 * 11 * 60) = 25
    _, driver = _search(repo, [("gender", "female"), ("_count", "10")])
    assert driver is None


def test_counts_are_remembered_per_clause(repo: Repository, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(unit, "DRIVER_LIMIT", 5)
    counted: list[int] = []
    original = ClauseCounts.put

    def spy(self: ClauseCounts, key: Any, n: int, counted_to: int) -> None:
        counted.append(n)
        original(self, key, n, counted_to)

    monkeypatch.setattr(ClauseCounts, "put", spy)
    first, _ = _search(repo, [("family", "Jon")])
    again, _ = _search(repo, [("family", "Jon")])
    assert first == again and len(first) == 25 and counted == [25]
    _search(repo, [("family", "Smi")])
    assert counted == [25, 35]


def test_clause_counts_expire_and_respect_the_cap() -> None:
    counts = ClauseCounts(ttl=60, size=2)
    counts.put("a", 7, 100)  # exact: good for any cap
    assert counts.get("a", 10) == 7 and counts.get("a", 1000) == 7
    counts.put("b", 100, 100)  # capped at 100: says nothing about a cap of 1000
    assert counts.get("b", 50) == 100 and counts.get("b", 1000) is None
    counts.put("c", 1, 10)  # the oldest goes
    assert counts.get("a", 10) is None and counts.get("c", 10) == 1
    stale = ClauseCounts(ttl=0)
    stale.put("a", 7, 100)
    assert stale.get("a", 10) is None


def test_type_counts_are_counted_once_per_ttl(repo: Repository) -> None:
    counts = TypeCounts(ttl=3600)
    with repo.engine.connect() as conn:
        assert counts.get(conn, "Patient") == 60
    with repo.unit(CTX) as u:
        u.create({"resourceType": "Patient", "name": [{"family": "Late"}]})
    with repo.engine.connect() as conn:
        assert counts.get(conn, "Patient") == 60  # remembered
        counts.forget()
        assert counts.get(conn, "Patient") == 61


def test_a_postgresql_walk_stays_a_correlated_probe(repo: Repository) -> None:
    """PostgreSQL would turn the walk's EXISTS into a semi-join over every match; the OFFSET
    keeps it a probe per resource walked (SQLite's probe keeps its own index hint instead)."""
    from sqlalchemy import select

    from server.search.sql import SqlCompiler
    from server.store.schema import resource

    query = repo.parse_search(["Patient"], [("gender", "female")])
    clause = query.clauses_by_type["Patient"][0]
    r = resource.alias("r")
    for sqlite, wanted, unwanted in ((True, "param_id + ", "OFFSET"), (False, "OFFSET", "param_id + ")):
        compiler = SqlCompiler(None, lambda *a: None, probe_hint=sqlite)  # type: ignore[arg-type,return-value]
        compiler.correlated = True
        sql = str(select(r.c.pk).where(compiler.clause("Patient", r, clause)).compile(repo.engine))
        assert wanted in sql and unwanted not in sql, sql
