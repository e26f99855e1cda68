"""Token search over HTTP, on SQLite and PostgreSQL: system|code, |code, code, system|,
:not, :text, :of-type, :missing, OR by commas and AND by repetition."""

from __future__ import annotations

import pytest

from tests.api import ukdata as uk
from tests.api.searchkit import hits, load, search
from tests.conftest import NHS, nhs_number

V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
RIO = "https://fhir.lpt.nhs.uk/Id/rio"


@pytest.fixture(scope="module")
def data(module_fhir):
    rio = {"type": {"coding": [{"system": V2_0203, "code": "MR"}]}, "system": RIO, "value": "RIO1"}
    p1 = uk.service_user(1, identifier=[{"system": NHS, "value": nhs_number(1)}, rio], active=True)
    p2 = uk.service_user(2, family="Nunez", gender="male", active=False)
    p3 = uk.service_user(3, family="Smithson", telecom=[{"system": "email", "value": "amy@example.org"}])
    p4 = uk.service_user(4, identifier=[{"value": "LOCAL-4"}])
    del p4["gender"]
    return load(module_fhir, [
        ("p1", p1), ("p2", p2), ("p3", p3), ("p4", p4),
        ("o1", lambda m: uk.observation(m["p1"]["id"])),
        ("o2", lambda m: uk.observation(m["p2"]["id"], code="8867-4", display="Heart rate", value=72,
                                        unit="/min", category="vital-signs")),
        ("o3", lambda m: dict(uk.observation(m["p1"]["id"]), code={"coding": [
            {"system": uk.LOINC, "code": "15074-8"}, {"system": uk.SNOMED, "code": "33747003"}],
            "text": "Blood glucose"})),
        ("c1", lambda m: uk.condition(m["p1"]["id"])),
        ("c2", lambda m: dict(uk.condition(m["p2"]["id"]), code={"coding": [
            {"system": uk.SNOMED, "code": "197480006", "display": "Anxiety disorder"}],
            "text": "Generalised anxiety"})),
    ])


@pytest.mark.parametrize(("query", "expected"), [
    (f"Patient?identifier={NHS}|{nhs_number(1)}", {"p1"}),
    (f"Patient?identifier={nhs_number(2)}", {"p2"}),
    (f"Patient?identifier={NHS}|", {"p1", "p2", "p3"}),
    ("Patient?identifier=|LOCAL-4", {"p4"}),
    ("Patient?identifier=LOCAL-4", {"p4"}),
    (f"Patient?identifier={NHS}|LOCAL-4", set()),
    (f"Patient?identifier=|{nhs_number(1)}", set()),
    (f"Patient?identifier={RIO}|RIO1", {"p1"}),
    ("Patient?gender=female", {"p1", "p3"}),
    ("Patient?gender=female,male", {"p1", "p2", "p3"}),
    ("Patient?gender:not=female", {"p2", "p4"}),
    ("Patient?gender:missing=true", {"p4"}),
    ("Patient?gender:missing=false", {"p1", "p2", "p3"}),
    ("Patient?active=true", {"p1"}),
    ("Patient?active=false", {"p2"}),
    ("Patient?email=amy@example.org", {"p3"}),
    (f"Patient?gender=female&identifier={NHS}|{nhs_number(3)}", {"p3"}),
    ("Patient?gender=female&gender=male", set()),
    (f"Observation?code={uk.LOINC}|15074-8", {"o1", "o3"}),
    ("Observation?code=15074-8", {"o1", "o3"}),
    ("Observation?code=15074-8,8867-4", {"o1", "o2", "o3"}),
    (f"Observation?code={uk.LOINC}|15074-8&code={uk.SNOMED}|33747003", {"o3"}),
    (f"Observation?code={uk.SNOMED}|15074-8", set()),
    (f"Observation?category={uk.OBS_CATEGORY}|vital-signs", {"o2"}),
    ("Observation?code:not=8867-4", {"o1", "o3"}),
    ("Condition?code:text=depress", {"c1"}),
    ("Condition?code:text=ANXIETY", {"c2"}),
    ("Condition?code:text=disorder", set()),  # :text matches from the start of the display text
    ("Observation?code:text=blood", {"o3"}),
    ("Condition?code:text=generalised", {"c2"}),
])
def test_token(module_fhir, data, query, expected):
    assert hits(module_fhir, data, query) == expected


def test_identifier_of_type(module_fhir, data):
    assert hits(module_fhir, data, f"Patient?identifier:of-type={V2_0203}|MR|RIO1") == {"p1"}
    assert hits(module_fhir, data, f"Patient?identifier:of-type={V2_0203}|MR|RIO2") == set()
    assert hits(module_fhir, data, f"Patient?identifier:of-type={V2_0203}|NH|RIO1") == set()
    assert hits(module_fhir, data, f"Patient?identifier:of-type={V2_0203}|MR|RIO1,{V2_0203}|MR|x") == {"p1"}
    # the type rows do not answer ordinary identifier searches with a system
    assert hits(module_fhir, data, f"Patient?identifier={V2_0203}|MR") == set()
    assert hits(module_fhir, data, "Patient?identifier=RIO1") == {"p1"}


def test_identifier_of_type_needs_three_parts(module_fhir, data):
    search(module_fhir, "Patient?identifier:of-type=RIO1", status=400)


def test_missing_takes_true_or_false(module_fhir, data):
    search(module_fhir, "Patient?gender:missing=maybe", status=400)


def test_modifier_not_allowed_on_token_is_400(module_fhir, data):
    search(module_fhir, "Patient?gender:exact=female", status=400)
