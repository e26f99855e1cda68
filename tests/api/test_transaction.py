"""Transaction and batch Bundles over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from tests.api import ukdata as uk
from tests.conftest import BASE, NHS, nhs_number

FHIR_BASE = f"{BASE}/fhir"
PAT = "urn:uuid:0c3c7b4e-1a55-4c1c-9d53-54a2a0a8a001"
SR = "urn:uuid:0c3c7b4e-1a55-4c1c-9d53-54a2a0a8a002"


def bundle(kind, *entries):
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def entry(method, url, resource=None, full_url=None, **request):
    out = {"request": {"method": method, "url": url, **request}}
    if resource is not None:
        out["resource"] = resource
    if full_url:
        out["fullUrl"] = full_url
    return out


def total(fhir, query):
    r = fhir.get(query)
    assert r.status_code == 200, r.text
    return r.json()["total"]


def _id(location):
    return location.split("/_history/")[0].rsplit("/", 1)[1]


def test_transaction_rewrites_urn_uuid_references(fhir):
    sr = uk.referral("placeholder")
    sr["subject"] = {"reference": PAT}
    r = fhir.post("", bundle("transaction", entry("POST", "ServiceRequest", sr, SR),
                             entry("POST", "Patient", uk.service_user(1), PAT)))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["type"] == "transaction-response"
    sr_resp, pat_resp = (e["response"] for e in body["entry"])
    assert sr_resp["status"] == pat_resp["status"] == "201 Created"
    assert pat_resp["location"].startswith(f"{FHIR_BASE}/Patient/") and pat_resp["etag"] == 'W/"1"'
    stored = fhir.get(f"ServiceRequest/{_id(sr_resp['location'])}").json()
    assert stored["subject"]["reference"] == f"Patient/{_id(pat_resp['location'])}"


def test_transaction_is_atomic(fhir):
    bad = uk.service_user(2)
    bad["gender"] = "bogus"
    r = fhir.post("", bundle("transaction", entry("POST", "Patient", uk.service_user(1)),
                             entry("POST", "Patient", bad)))
    assert r.status_code == 422, r.text
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "Bundle.entry[1]" in outcome["issue"][0]["diagnostics"]
    assert total(fhir, "Patient") == 0


def test_transaction_failing_late_rolls_back_earlier_deletes_and_updates(fhir):
    keep = fhir.create(uk.service_user(1))
    other = fhir.create(uk.service_user(2))
    changed = dict(other, gender="male")
    r = fhir.post("", bundle("transaction",
                             entry("DELETE", f"Patient/{keep['id']}"),
                             entry("PUT", f"Patient/{other['id']}", changed),
                             entry("GET", "Patient/does-not-exist")))
    assert r.status_code == 404, r.text
    assert fhir.get(f"Patient/{keep['id']}").status_code == 200
    assert fhir.get(f"Patient/{other['id']}").json()["meta"]["versionId"] == "1"


def test_conditional_reference_is_resolved(fhir):
    p = fhir.create(uk.service_user(1))
    sr = uk.referral("x")
    sr["subject"] = {"reference": f"Patient?identifier={NHS}|{nhs_number(1)}"}
    r = fhir.post("", bundle("transaction", entry("POST", "ServiceRequest", sr)))
    assert r.status_code == 200, r.text
    sr_id = _id(r.json()["entry"][0]["response"]["location"])
    assert fhir.get(f"ServiceRequest/{sr_id}").json()["subject"]["reference"] == f"Patient/{p['id']}"


@pytest.mark.parametrize("matches", [0, 2])
def test_conditional_reference_must_match_exactly_one(fhir, matches):
    for n in range(matches):
        fhir.create(uk.service_user(n + 1, family="Khan"))
    sr = uk.referral("x")
    sr["subject"] = {"reference": "Patient?family=Khan"}
    r = fhir.post("", bundle("transaction", entry("POST", "ServiceRequest", sr)))
    assert r.status_code == 412, r.text
    assert r.json()["resourceType"] == "OperationOutcome"
    assert total(fhir, "ServiceRequest") == 0


def test_if_none_exist_reuses_the_match_and_its_id_for_references(fhir):
    p = fhir.create(uk.service_user(1))
    sr = uk.referral("x")
    sr["subject"] = {"reference": PAT}
    cond = f"identifier={NHS}|{nhs_number(1)}"
    r = fhir.post("", bundle("transaction",
                             entry("POST", "Patient", uk.service_user(1, family="Other"), PAT, ifNoneExist=cond),
                             entry("POST", "ServiceRequest", sr, SR)))
    assert r.status_code == 200, r.text
    first, second = r.json()["entry"]
    assert first["response"]["status"] == "200 OK"
    assert _id(first["response"]["location"]) == p["id"]
    assert total(fhir, "Patient") == 1
    assert fhir.get(f"Patient/{p['id']}").json()["name"][0]["family"] == "Smith"
    sr_id = _id(second["response"]["location"])
    assert fhir.get(f"ServiceRequest/{sr_id}").json()["subject"]["reference"] == f"Patient/{p['id']}"


def test_conditional_put_creates_then_updates(fhir):
    url = f"Patient?identifier={NHS}|{nhs_number(1)}"
    r = fhir.post("", bundle("transaction", entry("PUT", url, uk.service_user(1))))
    assert r.status_code == 200, r.text
    assert r.json()["entry"][0]["response"]["status"] == "201 Created"
    first = _id(r.json()["entry"][0]["response"]["location"])
    r = fhir.post("", bundle("transaction", entry("PUT", url, uk.service_user(1, family="Jones"))))
    assert r.json()["entry"][0]["response"]["status"] == "200 OK"
    assert r.json()["entry"][0]["response"]["etag"] == 'W/"2"'
    assert _id(r.json()["entry"][0]["response"]["location"]) == first
    assert total(fhir, "Patient") == 1


def test_conditional_put_with_two_matches_is_412(fhir):
    fhir.create(uk.service_user(1, family="Khan"))
    fhir.create(uk.service_user(2, family="Khan"))
    r = fhir.post("", bundle("transaction", entry("PUT", "Patient?family=Khan", uk.service_user(3))))
    assert r.status_code == 412


def test_processing_order_is_delete_post_put_get(fhir):
    old = fhir.create(uk.service_user(1, family="Old"))
    upd = fhir.create(uk.service_user(2, family="Before"))
    r = fhir.post("", bundle("transaction",
                             entry("GET", "Patient?_sort=family"),
                             entry("PUT", f"Patient/{upd['id']}", dict(upd, name=[{"family": "After"}])),
                             entry("POST", "Patient", uk.service_user(3, family="New")),
                             entry("DELETE", f"Patient/{old['id']}")))
    assert r.status_code == 200, r.text
    get, put, post, delete = r.json()["entry"]
    assert [put["response"]["status"], post["response"]["status"]] == ["200 OK", "201 Created"]
    assert delete["response"]["status"].startswith("204")
    found = get["resource"]
    assert found["type"] == "searchset"
    assert [e["resource"]["name"][0]["family"] for e in found["entry"]] == ["After", "New"]


def test_two_entries_on_one_resource_is_400(fhir):
    p = fhir.create(uk.service_user(1))
    r = fhir.post("", bundle("transaction", entry("PUT", f"Patient/{p['id']}", p),
                             entry("DELETE", f"Patient/{p['id']}")))
    assert r.status_code == 400
    assert fhir.get(f"Patient/{p['id']}").status_code == 200


def test_duplicate_full_url_is_400(fhir):
    r = fhir.post("", bundle("transaction", entry("POST", "Patient", uk.service_user(1), PAT),
                             entry("POST", "Patient", uk.service_user(2), PAT)))
    assert r.status_code == 400
    assert total(fhir, "Patient") == 0


def test_if_match_in_a_transaction(fhir):
    p = fhir.create(uk.service_user(1))
    r = fhir.post("", bundle("transaction", entry("PUT", f"Patient/{p['id']}", dict(p, gender="male"),
                                                  ifMatch='W/"3"')))
    assert r.status_code == 412
    r = fhir.post("", bundle("transaction", entry("PUT", f"Patient/{p['id']}", dict(p, gender="male"),
                                                  ifMatch='W/"1"')))
    assert r.status_code == 200
    assert r.json()["entry"][0]["response"]["etag"] == 'W/"2"'


def test_batch_entries_are_independent(fhir):
    p = fhir.create(uk.service_user(1))
    bad = uk.service_user(2)
    bad["gender"] = "bogus"
    r = fhir.post("", bundle("batch",
                             entry("POST", "Patient", uk.service_user(3)),
                             entry("POST", "Patient", bad),
                             entry("GET", f"Patient/{p['id']}"),
                             entry("GET", "Patient/missing"),
                             entry("PUT", f"Patient/{p['id']}", dict(p, gender="male"), ifMatch='W/"9"'),
                             entry("POST", "Medication", {"resourceType": "Medication"})))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["type"] == "batch-response"
    statuses = [e["response"]["status"].split()[0] for e in body["entry"]]
    assert statuses == ["201", "422", "200", "404", "412", "404"]
    for e in body["entry"][1::2]:
        assert e["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert body["entry"][2]["resource"]["id"] == p["id"]
    assert total(fhir, "Patient") == 2


def test_batch_if_none_exist(fhir):
    fhir.create(uk.service_user(1))
    cond = f"identifier={NHS}|{nhs_number(1)}"
    r = fhir.post("", bundle("batch", entry("POST", "Patient", uk.service_user(1), ifNoneExist=cond)))
    assert r.json()["entry"][0]["response"]["status"] == "200 OK"
    assert total(fhir, "Patient") == 1


def test_bundle_of_other_type_is_400(fhir):
    r = fhir.post("", bundle("collection"))
    assert r.status_code == 400
    r = fhir.post("", uk.service_user(1))
    assert r.status_code == 400


def test_entry_without_request_is_400(fhir):
    r = fhir.post("", bundle("transaction", {"resource": uk.service_user(1)}))
    assert r.status_code == 400
    assert r.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(("field", "value", "where"), [
    ("fullUrl", [1], "Bundle.entry[0].fullUrl"),
    ("resource", "Patient/1", "Bundle.entry[0].resource"),
    ("resource", None, "Bundle.entry[0].resource: POST needs a resource"),
    ("ifNoneExist", ["identifier=x|1"], "Bundle.entry[0].request.ifNoneExist"),
    ("ifMatch", ["W/\"1\""], "Bundle.entry[0].request.ifMatch"),
    ("url", {"u": "Patient"}, "Bundle.entry[0].request.url"),
])
def test_an_entry_of_the_wrong_shape_is_400_and_located(fhir, field, value, where):
    """Wrong JSON types in an entry used to fail inside the server (500) in a batch and in a
    transaction alike; each is a 400 naming the element, and nothing lands."""
    for kind in ("transaction", "batch"):
        e = entry("POST", "Patient", uk.service_user(1), PAT)
        (e["request"] if field in ("ifNoneExist", "ifMatch", "url") else e)[field] = value
        r = fhir.post("", bundle(kind, e))
        if kind == "transaction":
            assert r.status_code == 400, r.text
            diagnostics = r.json()["issue"][0]["diagnostics"]
        else:
            assert r.status_code == 200, r.text
            response = r.json()["entry"][0]["response"]
            assert response["status"].startswith("400"), response
            diagnostics = response["outcome"]["issue"][0]["diagnostics"]
        assert where in diagnostics, diagnostics
    assert total(fhir, "Patient") == 0
