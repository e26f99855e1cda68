"""String search over HTTP, on SQLite and PostgreSQL: starts-with after case and accent
folding by default, :exact, :contains, :missing, OR and AND."""

from __future__ import annotations

import pytest

from tests.api import ukdata as uk
from tests.api.searchkit import hits, load


@pytest.fixture(scope="module")
def data(module_fhir):
    p4 = uk.service_user(4, family="de la Cruz", given="Ravi")
    del p4["address"]
    return load(module_fhir, [
        ("p1", uk.service_user(1)),
        ("p2", uk.service_user(2, family="Núñez", given="José",
                               address=[uk.leicester_address("4 London Road", "LE2 0QA", "Oadby")])),
        ("p3", uk.service_user(3, family="Smithson", given="Amy")),
        ("p4", p4),
        ("pr1", uk.practitioner()),
    ])


@pytest.mark.parametrize(("query", "expected"), [
    ("Patient?family=smith", {"p1", "p3"}),
    ("Patient?family=SMITH", {"p1", "p3"}),
    ("Patient?family=Smiths", {"p3"}),
    ("Patient?family=nunez", {"p2"}),
    ("Patient?family=Núñez", {"p2"}),
    ("Patient?family=NUÑ", {"p2"}),
    ("Patient?family=mith", set()),
    ("Patient?family:exact=Smith", {"p1"}),
    ("Patient?family:exact=smith", set()),
    ("Patient?family:exact=Nunez", set()),
    ("Patient?family:exact=Núñez", {"p2"}),
    ("Patient?family:contains=mit", {"p1", "p3"}),
    ("Patient?family:contains=LA CR", {"p4"}),
    ("Patient?family:contains=%", set()),
    ("Patient?family:contains=_", set()),
    ("Patient?name=jose", {"p2"}),
    ("Patient?name=ravi", {"p4"}),
    ("Patient?given=amy", {"p3"}),
    ("Patient?family=smith,nunez", {"p1", "p2", "p3"}),
    ("Patient?family=smith&given=amy", {"p3"}),
    ("Patient?family=smith&family=smithson", {"p3"}),
    ("Patient?address-city=leicester", {"p1", "p3"}),
    ("Patient?address-city=oadby", {"p2"}),
    ("Patient?address=4 london", {"p2"}),
    ("Patient?address=london road", set()),
    ("Patient?address-postalcode=LE3", {"p1", "p3"}),
    ("Patient?address:missing=true", {"p4"}),
    ("Patient?address:missing=false", {"p1", "p2", "p3"}),
    ("Practitioner?name=patel", {"pr1"}),
    ("Practitioner?name=dr", {"pr1"}),
])
def test_string(module_fhir, data, query, expected):
    assert hits(module_fhir, data, query) == expected
