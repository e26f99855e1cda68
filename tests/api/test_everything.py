"""Patient/{id}/$everything over HTTP on SQLite and PostgreSQL: the compartment, what it
refers to, paging, _since and _count."""

from __future__ import annotations

import pytest

from tests.api import ukdata as uk
from tests.api.searchkit import load, search
from tests.conftest import BASE

FHIR_BASE = f"{BASE}/fhir"


@pytest.fixture(scope="module")
def data(module_fhir):
    made = load(module_fhir, [
        ("gp", uk.gp_practice()),
        ("pr", uk.practitioner()),
        ("p1", lambda m: uk.service_user(1, generalPractitioner=[uk.ref(m["gp"])])),
        ("p2", uk.service_user(2, family="Nunez")),
        ("sr1", lambda m: uk.referral(m["p1"]["id"], requester=uk.ref(m["pr"]))),
        ("o1", lambda m: uk.observation(m["p1"]["id"])),
        ("cp1", lambda m: uk.care_plan(m["p1"]["id"])),
        ("rp1", lambda m: uk.related_person(m["p1"]["id"])),
        ("sr2", lambda m: uk.referral(m["p2"]["id"])),
        ("o2", lambda m: uk.observation(m["p2"]["id"])),
    ])
    stamp = module_fhir.get(f"Observation/{made['o1']['id']}").json()["meta"]["lastUpdated"]
    made["late"] = module_fhir.create(uk.task(made["p1"]["id"]))
    made["_since"] = {"resourceType": "-", "id": stamp}
    return made


def _refs(bundle, mode=None):
    return uk.refs(bundle, mode)


def _ref(data, *labels):
    return {f"{data[k]['resourceType']}/{data[k]['id']}" for k in labels}


def test_everything_is_the_compartment_and_what_it_refers_to(module_fhir, data):
    bundle = search(module_fhir, f"Patient/{data['p1']['id']}/$everything")
    assert bundle["type"] == "searchset"
    assert _refs(bundle, "match") == _ref(data, "p1", "sr1", "o1", "cp1", "rp1", "late")
    assert _refs(bundle, "include") == _ref(data, "gp", "pr")
    assert bundle["total"] == 6
    assert all(e["fullUrl"].startswith(FHIR_BASE + "/") for e in bundle["entry"])


def test_everything_pages_with_count(module_fhir, data):
    url = f"Patient/{data['p1']['id']}/$everything?_count=2"
    seen, pages = [], 0
    while url:
        bundle = search(module_fhir, url)
        pages += 1
        matches = [f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"]
                   if e["search"]["mode"] == "match"]
        assert len(matches) == 2
        seen += matches
        url = uk.link(bundle, "next")
        if url:
            assert url.startswith(f"{FHIR_BASE}/Patient/{data['p1']['id']}/$everything?")
    assert pages == 3
    assert sorted(seen) == sorted(_ref(data, "p1", "sr1", "o1", "cp1", "rp1", "late"))


def test_everything_since(module_fhir, data):
    since = data["_since"]["id"]
    bundle = search(module_fhir, f"Patient/{data['p1']['id']}/$everything?_since={since}")
    assert _refs(bundle, "match") == _ref(data, "o1", "cp1", "rp1", "late")


def test_everything_paging_link_of_another_patient_is_400(module_fhir, data):
    nxt = uk.link(search(module_fhir, f"Patient/{data['p1']['id']}/$everything?_count=2"), "next")
    forged = nxt.replace(data["p1"]["id"], data["p2"]["id"])
    search(module_fhir, forged, status=400)


def test_everything_of_unknown_patient_is_404(module_fhir, data):
    search(module_fhir, "Patient/nobody/$everything", status=404)


def test_everything_with_patient_scope_of_another_patient_is_404(module_fhir, module_app, data):
    token = module_app.state.api.tokens.issue("app", "patient/*.rs", patient=data["p2"]["id"])
    r = module_fhir.as_(token).get(f"Patient/{data['p1']['id']}/$everything")
    assert r.status_code == 404
    bundle = module_fhir.as_(token).get(f"Patient/{data['p2']['id']}/$everything").json()
    assert _refs(bundle) == _ref(data, "p2", "sr2", "o2")


@pytest.mark.parametrize("query", ["_count=abc", "_since=yesterday"])
def test_everything_bad_parameters_are_400(module_fhir, data, query):
    search(module_fhir, f"Patient/{data['p1']['id']}/$everything?{query}", status=400)
