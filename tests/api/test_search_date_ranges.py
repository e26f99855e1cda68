"""Date ranges on single-valued parameters read as one stretch of the index, on SQLite and
PostgreSQL: the folded, narrowed plan answers exactly what the plain per-clause comparisons
answer and what the R4 prefix rules say, over generated bounds of every precision and time
zone, around clock changes; parameters of several values keep their per-value meaning."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import and_, select

from server.definitions.search_parameters import default_registry
from server.fhir.dates import parse_range
from server.search.query import QueryParser
from server.search.ranges import date_shape, fold_date_clauses, low_access
from server.search.sql import SqlCompiler, always
from server.store.engine import make_engine
from server.store.schema import resource
from tests.api import ukdata as uk
from tests.api.searchkit import load, search

# clock changes in London: 2020-03-29 01:00 GMT and 2020-10-25 01:00 GMT; 1970 was all
# British Standard Time (GMT+1 all year)
DAYS = ["2020-01-01", "2020-02-29", "2020-03-28", "2020-03-29", "2020-03-30", "2020-03-31", "2020-04-01",
        "2020-10-24", "2020-10-25", "2020-10-26", "2020-12-31", "2021-01-01", "1970-06-15", "1971-10-31"]
ZONES = ["Z", "+01:00", "-05:00", "+14:00", "+05:30"]
TIMES = ["00:00:00", "00:30:00", "00:59:59", "01:00:00", "01:30:00", "01:59:59", "02:00:00", "12:00:00",
         "23:00:00", "23:30:00", "23:59:59"]


def _date_values(rng: random.Random, n: int) -> list[str]:
    out = ["2020", "2021", "1970", "2020-03", "2020-10", "2020-12", "2021-01"]
    while len(out) < n:
        day = rng.choice(DAYS)
        out.append(rng.choice([day, day, day[:7], day[:4]]))
    return out


def _datetime_values(rng: random.Random, n: int) -> list[str]:
    out = _date_values(rng, n // 3)
    while len(out) < n:
        out.append(f"{rng.choice(DAYS)}T{rng.choice(TIMES)}{rng.choice(ZONES)}")
    return out


BIRTH_DATES = _date_values(random.Random(4), 50)
AUTHORED = _datetime_values(random.Random(5), 60)


@pytest.fixture(scope="module")
def data(module_fhir):
    items: list[tuple[str, Any]] = [(f"p{i}", uk.service_user(i + 1, birthDate=v)) for i, v in enumerate(BIRTH_DATES)]
    items.append(("p-none", {k: v for k, v in uk.service_user(99).items() if k != "birthDate"}))
    items += [(f"s{i}", lambda m, v=v: uk.referral(m["p0"]["id"], authored=v)) for i, v in enumerate(AUTHORED)]
    # several location periods per Encounter: location-period has several values
    items += [
        ("e-two", lambda m: uk.encounter(m["p0"]["id"], location=[_loc("2020-01-01", "2020-01-31"),
                                                                 _loc("2020-06-01", "2020-06-30")])),
        ("e-one", lambda m: uk.encounter(m["p0"]["id"], location=[_loc("2020-03-01", "2020-03-31")])),
    ]
    return load(module_fhir, items)


def _loc(start: str, end: str) -> dict[str, Any]:
    return {"location": {"display": "Bradgate Mental Health Unit"}, "period": {"start": start, "end": end}}


# -- the R4 prefix rules, written out again: the oracle --------------------------------------
def _matches(prefix: str, low: int, high: int, raw: str) -> bool:
    plo, phi = parse_range(raw)
    return {
        "eq": low >= plo and high <= phi, "ne": low < plo or high > phi, "gt": high > phi, "lt": low < plo,
        "ge": high >= plo, "le": low <= phi, "sa": low > phi, "eb": high < plo,
    }[prefix]


def _expected(values: dict[str, str], clauses: list[tuple[str, str]]) -> set[str]:
    out = set()
    for label, v in values.items():
        low, high = parse_range(v)
        if all(any(_matches(p, low, high, raw) for p, raw in alts) for alts in clauses):
            out.add(label)
    return out


def _general(url: str, rtype: str, pairs: list[tuple[str, str]], narrow: bool, fold: bool) -> set[str]:
    """The ids a search gives through the compiler with folding and narrowing on or off."""
    registry = default_registry()
    query = QueryParser(registry).parse([rtype], pairs)
    compiler = SqlCompiler(None, lambda _t, _r: always())
    compiler.narrow_dates = narrow
    clauses = fold_date_clauses(query.clauses) if fold else query.clauses
    r = resource.alias("r")
    stmt = select(r.c.id).where(and_(r.c.resource_type == rtype, *(compiler.clause(rtype, r, c) for c in clauses)))
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {row[0] for row in conn.execute(stmt)}
    finally:
        engine.dispose()


def _ids(fhir, query: str) -> set[str]:
    found: set[str] = set()
    bundle = search(fhir, query + "&_count=1000")
    found |= {e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"}
    assert not any(link["relation"] == "next" for link in bundle.get("link", []))
    return found


# -- generated bounds -------------------------------------------------------------------------
PREFIXES = ["eq", "ne", "gt", "lt", "ge", "le", "sa", "eb"]
#: ranges (a lower and an upper bound) are what the narrowed plan serves: draw them often
RANGE = st.tuples(st.sampled_from(["ge", "gt"]), st.sampled_from(["le", "lt", "eq"]))


@st.composite
def bound(draw: Any, with_time: bool) -> str:
    if with_time and draw(st.booleans()):  # near a stored value: its own bounds, or inside it
        stored = draw(st.sampled_from(AUTHORED))
        if len(stored) > 10 and draw(st.booleans()):
            stored = stored[:19] + draw(st.sampled_from([".5", ".001", ".999"])) + stored[19:]
        return stored
    day = draw(st.sampled_from(DAYS))
    kind = draw(st.sampled_from(["year", "month", "day", "day", "time", "time-local", "fraction"] if with_time
                                else ["year", "month", "day", "day"]))
    if kind == "year":
        return day[:4]
    if kind == "month":
        return day[:7]
    if kind == "day":
        return day
    time = draw(st.sampled_from(TIMES))
    if kind == "time-local":  # no zone: read in London
        return f"{day}T{draw(st.sampled_from([time[:5], time, time[:2]]))}"
    if kind == "fraction":  # inside a second: a stored second may straddle it
        time += draw(st.sampled_from([".5", ".250", ".999"]))
    return f"{day}T{time}{draw(st.sampled_from(ZONES))}"


def clauses(with_time: bool) -> Any:
    value = st.tuples(st.sampled_from(PREFIXES), bound(with_time))
    anything = st.lists(st.lists(value, min_size=1, max_size=2), min_size=1, max_size=3)
    ranged = st.tuples(RANGE, bound(with_time), bound(with_time)).map(
        lambda t: [[(t[0][0], t[1])], [(t[0][1], t[2])]])
    return st.one_of(anything, ranged, st.tuples(ranged, anything).map(lambda t: t[0] + t[1]))


def _pairs(code: str, cl: list[list[tuple[str, str]]]) -> list[tuple[str, str]]:
    return [(code, ",".join(p + raw for p, raw in alts)) for alts in cl]


def _query(rtype: str, pairs: list[tuple[str, str]]) -> str:
    from urllib.parse import quote

    return rtype + "?" + "&".join(f"{k}={quote(v, safe=',:')}" for k, v in pairs)


def _check(module_fhir, module_backend, data, rtype, code, prefix, values, cl) -> None:
    pairs = _pairs(code, cl)
    by_id = {data[label]["id"]: label for label in data if label.startswith(prefix)}
    expected = _expected(values, cl)
    got = {by_id[i] for i in _ids(module_fhir, _query(rtype, pairs)) if i in by_id}
    assert got == expected, (pairs, sorted(got ^ expected))
    plain = {by_id[i] for i in _general(module_backend, rtype, pairs, narrow=False, fold=False) if i in by_id}
    folded = {by_id[i] for i in _general(module_backend, rtype, pairs, narrow=True, fold=True) if i in by_id}
    assert plain == folded == expected, pairs


SLOW = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SLOW
@given(cl=clauses(with_time=True))
def test_birthdate_ranges_match_the_plain_plan(module_fhir, module_backend, data, cl):
    values = {f"p{i}": v for i, v in enumerate(BIRTH_DATES)}
    _check(module_fhir, module_backend, data, "Patient", "birthdate", "p", values, cl)


@SLOW
@given(cl=clauses(with_time=True))
def test_datetime_ranges_match_the_plain_plan(module_fhir, module_backend, data, cl):
    values = {f"s{i}": v for i, v in enumerate(AUTHORED)}
    _check(module_fhir, module_backend, data, "ServiceRequest", "authored", "s", values, cl)


# -- fixed cases ------------------------------------------------------------------------------
@pytest.mark.parametrize(("query", "expected"), [
    # a month range: the whole of March, the month and the year that hold it
    ("Patient?birthdate=ge2020-03-01&birthdate=lt2020-04-01", {"2020-03", "2020", "2020-03-28", "2020-03-29",
                                                               "2020-03-30", "2020-03-31"}),
    ("Patient?birthdate=ge2020-03-01&birthdate=le2020-03-31", {"2020-03", "2020", "2020-03-28", "2020-03-29",
                                                               "2020-03-30", "2020-03-31"}),
    ("Patient?birthdate=2020-03", {"2020-03", "2020-03-28", "2020-03-29", "2020-03-30", "2020-03-31"}),
    # 23:30 UTC on 28 March is still 28 March in London; on 29 March 00:30 BST is 23:30 UTC the day before
    ("Patient?birthdate=ge2020-03-28T23:30:00Z&birthdate=lt2020-03-28T23:31:00Z", {"2020-03", "2020", "2020-03-28"}),
    ("Patient?birthdate=ge2020-03-29T23:30:00Z&birthdate=lt2020-03-29T23:31:00Z", {"2020-03", "2020", "2020-03-30"}),
])
def test_month_ranges(module_fhir, data, query, expected):
    got = {data_label_value(data, i) for i in _ids(module_fhir, query)}
    assert got == expected


def data_label_value(data: dict[str, Any], rid: str) -> str:
    for res in data.values():
        if res["id"] == rid:
            return str(res.get("birthDate"))
    raise KeyError(rid)


def test_several_values_each_bound_may_match_a_different_value(module_fhir, data):
    """location-period has several values: each bound is met by any one of them."""
    # e-two: January and June; neither period alone lies after 2020-05-31 and before 2020-02-01
    q = "Encounter?location-period=gt2020-05-31&location-period=lt2020-02-01"
    assert _ids(module_fhir, q) == {data["e-two"]["id"]}
    # June ends after 10 March and January starts before 12 March: e-two matches as e-one does
    q = "Encounter?location-period=ge2020-03-10&location-period=le2020-03-12"
    assert _ids(module_fhir, q) == {data["e-one"]["id"], data["e-two"]["id"]}
    assert not date_shape("Encounter", default_registry().get("Encounter", "location-period").expression).single


def test_shapes_come_from_the_definitions():
    reg = default_registry()

    def shape(rtype: str, code: str) -> tuple[bool, bool]:
        p = reg.get(rtype, code)
        assert p is not None
        s = date_shape(rtype, p.expression)
        return s.single, s.bounded

    assert shape("Patient", "birthdate") == (True, True)  # Patient.birthDate 0..1 date
    assert shape("Patient", "death-date") == (True, True)  # deceased[x] as dateTime
    assert shape("ServiceRequest", "authored") == (True, True)
    assert shape("Encounter", "date") == (True, False)  # a Period: its end may be open
    assert shape("Condition", "onset-date") == (True, False)  # one choice element, two casts
    assert shape("Observation", "date")[0] is False  # effective[x] may be a Timing: many rows
    assert shape("ServiceRequest", "occurrence")[0] is False
    assert shape("Encounter", "location-period")[0] is False  # location 0..*


def test_folded_clause_and_bounded_stretch():
    reg = default_registry()
    query = QueryParser(reg).parse(["Patient"], [("birthdate", "ge2020-03-01"), ("birthdate", "lt2020-04-01"),
                                                 ("family", "smi")])
    folded = fold_date_clauses(query.clauses)
    assert len(folded) == 2 and len(folded[0].same_row) == 1
    access = low_access([folded[0].values, *folded[0].same_row])
    assert access is not None
    march, april = parse_range("2020-03-01")[0], parse_range("2020-04-01")[0]
    assert access.upper == april - 1
    assert march - access.lower <= 3 * 3_600_000_000
    assert set(access.points) == {parse_range("2020")[0]}  # the month and day start at the bound itself
    # several values on one Observation date: nothing folds
    obs = QueryParser(reg).parse(["Observation"], [("date", "ge2020-03-01"), ("date", "lt2020-04-01")])
    assert len(fold_date_clauses(obs.clauses)) == 2
