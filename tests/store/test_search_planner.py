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
from server.store.statistics import PlanCounts

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
    repo.plan_counts = PlanCounts()
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
    original = PlanCounts.put

    def spy(self: PlanCounts, key: Any, n: int, counted_to: int | None = None) -> None:
        if key[0] != "type":
            counted.append(n)
        original(self, key, n, counted_to)

    monkeypatch.setattr(PlanCounts, "put", spy)
    first, _ = _search(repo, [("family", "Jon")])
    again, _ = _search(repo, [("family", "Jon")])
    assert first == again and len(first) == 25 and counted == [25]
    _search(repo, [("family", "Smi")])
    assert counted == [25, 35]


def test_plan_counts_expire_and_respect_the_cap() -> None:
    counts = PlanCounts(ttl=60, size=2)
    counts.put("a", 7, 100)  # fewer than counted up to: exact, good for any cap
    assert counts.get("a", 10) == 7 and counts.get("a", 1000) == 7
    counts.put("b", 100, 100)  # stopped at 100: says nothing about a cap of 1000
    assert counts.get("b", 50) == 100 and counts.get("b", 1000) is None
    counts.put("c", 1)  # exact; the oldest goes
    assert counts.get("a", 10) is None and counts.get("c") == 1
    stale = PlanCounts(ttl=0)
    stale.put("a", 7, 100)
    assert stale.get("a", 10) is None


def test_a_count_is_made_once_per_ttl() -> None:
    counted: list[int | None] = []

    def counter(upto: int | None) -> int:
        counted.append(upto)
        return 60 if upto is None else min(60, upto)

    counts = PlanCounts(ttl=3600)
    assert counts.count(("type", "Patient"), counter) == 60
    assert counts.count(("type", "Patient"), counter) == 60
    assert counted == [None]
    assert counts.count("clause", counter, 25) == 25 and counts.count("clause", counter, 10) == 10
    assert counted == [None, 25]  # counted to 25: good for any cap up to 25
    assert counts.count("clause", counter, 50) == 50 and counted == [None, 25, 50]
    assert PlanCounts(ttl=0).count("x", counter) == 60 and counted == [None, 25, 50, None]
