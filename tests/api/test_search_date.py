"""Date search over HTTP, on SQLite and PostgreSQL: every prefix, the precisions of year,
month, day and time, time zones (unzoned values are Europe/London), and Period targets."""

from __future__ import annotations

import pytest

from tests.api import ukdata as uk
from tests.api.searchkit import hits, load, search


@pytest.fixture(scope="module")
def data(module_fhir):
    return load(module_fhir, [
        ("p1", uk.service_user(1, birthDate="1984-05-17")),
        ("p2", uk.service_user(2, birthDate="1990-12-31")),
        ("p3", uk.service_user(3, birthDate="1984-05")),
        ("p4", uk.service_user(4, birthDate="2001")),
        # 00:30 in London summer time is 23:30 UTC the day before
        ("o1", lambda m: uk.observation(m["p1"]["id"], effective="2024-06-01T00:30:00+01:00")),
        ("o2", lambda m: uk.observation(m["p1"]["id"], effective="2024-03-14T09:00:00Z")),
        ("o3", lambda m: _period(m["p1"]["id"], {"start": "2024-01-10", "end": "2024-01-20"})),
        ("o4", lambda m: _period(m["p1"]["id"], {"start": "2024-02-01T08:00:00Z"})),
        ("e1", lambda m: uk.encounter(m["p1"]["id"], start="2024-03-15T09:00:00Z", end="2024-03-15T10:00:00Z")),
    ])


def _period(patient_id, period):
    res = uk.observation(patient_id)
    del res["effectiveDateTime"]
    res["effectivePeriod"] = period
    return res


@pytest.mark.parametrize(("query", "expected"), [
    ("Patient?birthdate=1984-05-17", {"p1"}),
    ("Patient?birthdate=eq1984-05-17", {"p1"}),
    ("Patient?birthdate=1984-05", {"p1", "p3"}),
    ("Patient?birthdate=1984", {"p1", "p3"}),
    ("Patient?birthdate=ne1984-05-17", {"p2", "p3", "p4"}),
    ("Patient?birthdate=lt1984-05-17", {"p3"}),
    ("Patient?birthdate=gt1984-05-17", {"p2", "p3", "p4"}),
    ("Patient?birthdate=le1984-05-17", {"p1", "p3"}),
    ("Patient?birthdate=ge1984-05-17", {"p1", "p2", "p3", "p4"}),
    ("Patient?birthdate=sa1984-05-17", {"p2", "p4"}),
    ("Patient?birthdate=eb1990-12-31", {"p1", "p3"}),
    ("Patient?birthdate=ap1990-12-31", {"p2"}),
    ("Patient?birthdate=2001-06-01", set()),
    ("Patient?birthdate=ge1985&birthdate=lt2000", {"p2"}),
    ("Patient?birthdate=1984-05-17,2001", {"p1", "p4"}),
    ("Observation?date=2024-06-01", {"o1"}),
    ("Observation?date=2024-05-31", set()),
    ("Observation?date=2024-05-31T23:30:00Z", {"o1"}),
    ("Observation?date=2024-06-01T00:30:00%2B01:00", {"o1"}),
    ("Observation?date=2024-06-01T00:30", {"o1"}),
    ("Observation?date=2024-06-01T00", {"o1"}),
    ("Observation?date=ge2024-05-31T23:00:00Z&date=lt2024-05-31T23:31:00Z", {"o1", "o4"}),  # o4 never ends
    ("Observation?date=2024-03-14T09:00:00Z", {"o2"}),
    ("Observation?date=2024-03-14T09:00:00.000Z", set()),  # a millisecond holds no whole second
    ("Observation?date=2024-03-14T09:00:01Z", set()),
    ("Observation?date=2024-01", {"o3"}),
    ("Observation?date=2024-01-15", set()),  # the period is wider than the day
    ("Observation?date=ge2024-01-15&date=le2024-01-15", {"o3"}),
    ("Observation?date=sa2024-01-09", {"o1", "o2", "o3", "o4"}),
    ("Observation?date=sa2024-01-10", {"o1", "o2", "o4"}),
    ("Observation?date=eb2024-01-21", {"o3"}),
    ("Observation?date=eb2024-01-20", set()),
    ("Observation?date=gt2030-01-01", {"o4"}),  # an open end runs forever
    ("Observation?date=2024", {"o1", "o2", "o3"}),
    ("Encounter?date=2024-03-15", {"e1"}),
    ("Encounter?date=2024-03-15T09:30:00Z", set()),
    ("Encounter?date=ap2024-03-15T09:30:00Z", {"e1"}),
])
def test_date(module_fhir, data, query, expected):
    assert hits(module_fhir, data, query) == expected


def test_last_updated(module_fhir, data):
    first, last = data["p1"]["meta"]["lastUpdated"], data["p4"]["meta"]["lastUpdated"]
    assert hits(module_fhir, data, f"Patient?_lastUpdated=ge{first}") == {"p1", "p2", "p3", "p4"}
    assert hits(module_fhir, data, f"Patient?_lastUpdated=lt{first}") == set()
    assert hits(module_fhir, data, f"Patient?_lastUpdated=gt{last}") == set()
    assert hits(module_fhir, data, f"Patient?_lastUpdated=le{last}") == {"p1", "p2", "p3", "p4"}
    assert hits(module_fhir, data, f"Patient?_lastUpdated={first[:4]}") == {"p1", "p2", "p3", "p4"}
    assert hits(module_fhir, data, "Patient?_lastUpdated=lt2001") == set()


@pytest.mark.parametrize("value", ["2024-13", "2024-02-30", "yesterday", "2024-03-14T9:00", "xx2024"])
def test_bad_date_is_400(module_fhir, data, value):
    body = search(module_fhir, f"Patient?birthdate={value}", status=400)
    assert body["resourceType"] == "OperationOutcome"


def test_the_year_9999_is_stored_and_found(module_fhir, data):
    """The last year Python represents: its periods end at 9999-12-31T23:59:59.999999Z instead
    of failing (a birth date or a search bound there used to answer 500)."""
    made = module_fhir.create(uk.service_user(7, family="Farfuture", birthDate="9999-12-31"))
    mine = {"far": made}
    for query, expected in [
        ("Patient?family=Farfuture&birthdate=9999", {"far"}),
        ("Patient?family=Farfuture&birthdate=9999-12-31", {"far"}),
        ("Patient?family=Farfuture&birthdate=gt9999-12-30", {"far"}),
        ("Patient?family=Farfuture&birthdate=lt9999-12-31", set()),
        ("Patient?family=Farfuture&birthdate=ge9999-12-31T23:59:59Z", {"far"}),
        ("Patient?_lastUpdated=gt9999-12-31", set()),
        ("Patient?_lastUpdated=gt9999-12-31T23:59:59.999Z", set()),
    ]:
        assert hits(module_fhir, mine, query) == expected, query
