"""_summary=true and _summary=text from the R4 isSummary, isModifier and cardinality flags,
on read and search, over HTTP on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from tests.api import ukdata as uk
from tests.api.searchkit import load, search

SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}
NARRATIVE = {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">Jane Smith</div>'}
TAG = {"system": "https://fhir.lpt.nhs.uk/tag", "code": "import"}


@pytest.fixture(scope="module")
def data(module_fhir):
    return load(module_fhir, [
        ("gp", uk.gp_practice()),
        ("p1", lambda m: uk.service_user(
            1, text=NARRATIVE, active=True, deceasedBoolean=False, maritalStatus={"text": "Married"},
            generalPractitioner=[uk.ref(m["gp"])], communication=[{"language": {"text": "English"}}],
            meta={"tag": [TAG]})),
        ("sr1", lambda m: uk.referral(m["p1"]["id"], text=NARRATIVE, note=[{"text": "Seen in A&E"}])),
    ])


def test_summary_true_on_read_keeps_summary_modifier_and_mandatory_elements(module_fhir, data):
    r = module_fhir.get(f"Patient/{data['p1']['id']}?_summary=true")
    assert r.status_code == 200
    res = r.json()
    assert set(res) == {"resourceType", "id", "meta", "identifier", "active", "name", "gender", "birthDate",
                        "address", "deceasedBoolean"}
    assert res["meta"]["tag"] == [TAG, SUBSETTED]
    assert res["deceasedBoolean"] is False  # a modifier is never dropped


def test_summary_true_in_search_of_a_resource_with_mandatory_elements(module_fhir, data):
    bundle = search(module_fhir, f"ServiceRequest?_id={data['sr1']['id']}&_summary=true")
    res = bundle["entry"][0]["resource"]
    assert set(res) == {"resourceType", "id", "meta", "status", "intent", "priority", "category", "code",
                        "subject", "authoredOn"}
    assert SUBSETTED in res["meta"]["tag"]
    assert bundle["total"] == 1


def test_summary_text_keeps_narrative_and_mandatory_elements(module_fhir, data):
    res = search(module_fhir, f"ServiceRequest?_id={data['sr1']['id']}&_summary=text")["entry"][0]["resource"]
    assert set(res) == {"resourceType", "id", "meta", "text", "status", "intent", "subject"}
    assert res["text"] == NARRATIVE
    res = module_fhir.get(f"Patient/{data['p1']['id']}?_summary=text").json()
    assert set(res) == {"resourceType", "id", "meta", "text"}


def test_summary_false_is_the_whole_resource(module_fhir, data):
    res = module_fhir.get(f"Patient/{data['p1']['id']}?_summary=false").json()
    assert res == data["p1"]
    assert SUBSETTED not in res["meta"]["tag"]


def test_summary_of_included_resources(module_fhir, data):
    bundle = search(module_fhir, f"ServiceRequest?_id={data['sr1']['id']}&_include=ServiceRequest:subject"
                                 "&_summary=true")
    included = [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "include"]
    assert [r["id"] for r in included] == [data["p1"]["id"]]
    assert "communication" not in included[0] and SUBSETTED in included[0]["meta"]["tag"]
