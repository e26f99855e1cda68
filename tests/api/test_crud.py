"""create, read, vread, update, patch and delete over HTTP, with their conditional forms,
on SQLite and PostgreSQL."""

from __future__ import annotations

from email.utils import parsedate_to_datetime

import pytest

from tests.api import ukdata as uk
from tests.conftest import BASE, NHS, nhs_number

FHIR_BASE = f"{BASE}/fhir"


def _issue_codes(r) -> list[str]:  # type: ignore[no-untyped-def]
    body = r.json()
    assert body["resourceType"] == "OperationOutcome", body
    return [i["code"] for i in body["issue"]]


# -- create -------------------------------------------------------------------------------------
def test_create_answers_201_with_location_etag_and_last_modified(fhir):
    r = fhir.post("Patient", uk.service_user(1, id="client-chosen"))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["id"] != "client-chosen"
    assert body["meta"]["versionId"] == "1"
    assert r.headers["location"] == f"{FHIR_BASE}/Patient/{body['id']}/_history/1"
    assert r.headers["etag"] == 'W/"1"'
    assert r.headers["content-type"].startswith("application/fhir+json")
    modified = parsedate_to_datetime(r.headers["last-modified"])
    updated = body["meta"]["lastUpdated"]
    assert modified.strftime("%Y-%m-%dT%H:%M:%S") == updated[:19]
    assert fhir.get("Patient/client-chosen").status_code == 404


def test_create_keeps_client_meta_but_sets_version(fhir):
    res = uk.service_user(1, meta={"versionId": "7", "lastUpdated": "2001-01-01T00:00:00Z",
                                   "tag": [{"system": "https://fhir.lpt.nhs.uk/tag", "code": "import"}]})
    body = fhir.create(res)
    assert body["meta"]["versionId"] == "1"
    assert body["meta"]["lastUpdated"] != "2001-01-01T00:00:00Z"
    assert body["meta"]["tag"][0]["code"] == "import"


def test_create_of_unknown_type_is_404(fhir):
    r = fhir.post("Medication", {"resourceType": "Medication"})
    assert r.status_code == 404
    assert _issue_codes(r)


def test_conditional_create_no_match_creates(fhir):
    cond = f"identifier={NHS}|{nhs_number(1)}"
    r = fhir.post("Patient", uk.service_user(1), headers={"If-None-Exist": cond})
    assert r.status_code == 201, r.text
    assert r.headers["etag"] == 'W/"1"'


def test_conditional_create_one_match_returns_existing(fhir):
    first = fhir.create(uk.service_user(1))
    cond = f"identifier={NHS}|{nhs_number(1)}"
    r = fhir.post("Patient", uk.service_user(1, family="Other"), headers={"If-None-Exist": cond})
    assert r.status_code == 200, r.text
    assert r.json()["id"] == first["id"]
    assert r.json()["name"][0]["family"] == "Smith"
    assert r.headers["etag"] == 'W/"1"'
    assert fhir.get(f"Patient?identifier={NHS}|{nhs_number(1)}").json()["total"] == 1


def test_conditional_create_many_matches_is_412(fhir):
    fhir.create(uk.service_user(1, family="Khan"))
    fhir.create(uk.service_user(2, family="Khan"))
    r = fhir.post("Patient", uk.service_user(3, family="Khan"), headers={"If-None-Exist": "family=Khan"})
    assert r.status_code == 412
    assert fhir.get("Patient?family=Khan").json()["total"] == 2


def test_conditional_create_with_unknown_parameter_is_400(fhir):
    r = fhir.post("Patient", uk.service_user(1), headers={"If-None-Exist": "no-such-param=1"})
    assert r.status_code == 400


# -- read / vread --------------------------------------------------------------------------------
def test_read(fhir):
    created = fhir.create(uk.service_user(1))
    r = fhir.get(f"Patient/{created['id']}")
    assert r.status_code == 200
    assert r.json() == created
    assert r.headers["etag"] == 'W/"1"'
    assert "last-modified" in r.headers


def test_read_unknown_id_is_404(fhir):
    r = fhir.get("Patient/does-not-exist")
    assert r.status_code == 404
    assert _issue_codes(r) == ["not-found"]


def test_read_unknown_type_is_404(fhir):
    r = fhir.get("Medication/123")
    assert r.status_code == 404
    assert r.json()["resourceType"] == "OperationOutcome"


def test_read_after_delete_is_410(fhir):
    created = fhir.create(uk.service_user(1))
    assert fhir.delete(f"Patient/{created['id']}").status_code == 200
    r = fhir.get(f"Patient/{created['id']}")
    assert r.status_code == 410
    assert r.json()["resourceType"] == "OperationOutcome"


def test_read_if_none_match_is_304(fhir):
    created = fhir.create(uk.service_user(1))
    r = fhir.get(f"Patient/{created['id']}", headers={"If-None-Match": 'W/"1"'})
    assert r.status_code == 304
    r = fhir.get(f"Patient/{created['id']}", headers={"If-None-Match": 'W/"0"'})
    assert r.status_code == 200


def test_vread_each_version(fhir):
    created = fhir.create(uk.service_user(1))
    pid = created["id"]
    changed = dict(created, gender="male")
    assert fhir.put(f"Patient/{pid}", changed).status_code == 200
    v1 = fhir.get(f"Patient/{pid}/_history/1")
    v2 = fhir.get(f"Patient/{pid}/_history/2")
    assert v1.status_code == v2.status_code == 200
    assert v1.json()["gender"] == "female" and v1.headers["etag"] == 'W/"1"'
    assert v2.json()["gender"] == "male" and v2.headers["etag"] == 'W/"2"'


@pytest.mark.parametrize("version", ["3", "0", "abc"])
def test_vread_unknown_version_is_404(fhir, version):
    created = fhir.create(uk.service_user(1))
    r = fhir.get(f"Patient/{created['id']}/_history/{version}")
    assert r.status_code == 404


def test_vread_of_the_delete_version_is_410_and_earlier_versions_stay_readable(fhir):
    created = fhir.create(uk.service_user(1))
    pid = created["id"]
    fhir.delete(f"Patient/{pid}")
    assert fhir.get(f"Patient/{pid}/_history/2").status_code == 410
    assert fhir.get(f"Patient/{pid}/_history/1").status_code == 200


# -- update ------------------------------------------------------------------------------------
def test_update_makes_a_new_version(fhir):
    created = fhir.create(uk.service_user(1))
    pid = created["id"]
    r = fhir.put(f"Patient/{pid}", dict(created, birthDate="1984-05-18"))
    assert r.status_code == 200, r.text
    assert r.json()["meta"]["versionId"] == "2"
    assert r.headers["etag"] == 'W/"2"'
    assert r.headers["location"] == f"{FHIR_BASE}/Patient/{pid}/_history/2"
    assert fhir.get(f"Patient/{pid}").json()["birthDate"] == "1984-05-18"


def test_update_if_match(fhir):
    created = fhir.create(uk.service_user(1))
    pid = created["id"]
    ok = fhir.put(f"Patient/{pid}", dict(created, gender="male"), headers={"If-Match": 'W/"1"'})
    assert ok.status_code == 200
    stale = fhir.put(f"Patient/{pid}", dict(created, gender="other"), headers={"If-Match": 'W/"1"'})
    assert stale.status_code == 412
    assert fhir.get(f"Patient/{pid}").json()["gender"] == "male"


def test_update_with_id_mismatch_is_400(fhir):
    created = fhir.create(uk.service_user(1))
    r = fhir.put(f"Patient/{created['id']}", dict(created, id="someone-else"))
    assert r.status_code == 400


def test_update_without_id_in_body_is_400(fhir):
    created = fhir.create(uk.service_user(1))
    body = {k: v for k, v in created.items() if k != "id"}
    r = fhir.put(f"Patient/{created['id']}", body)
    assert r.status_code == 400


def test_update_with_wrong_type_in_body_is_422(fhir):
    created = fhir.create(uk.service_user(1))
    r = fhir.put(f"Practitioner/{created['id']}", created)
    assert r.status_code == 422


def test_update_as_create(fhir):
    r = fhir.put("Patient/lpt-rt5-000123", uk.service_user(1, id="lpt-rt5-000123"))
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"{FHIR_BASE}/Patient/lpt-rt5-000123/_history/1"
    assert r.json()["meta"]["versionId"] == "1"
    assert fhir.get("Patient/lpt-rt5-000123").status_code == 200


def test_update_as_create_with_invalid_id_is_400(fhir):
    r = fhir.put("Patient/not_valid!", uk.service_user(1, id="not_valid!"))
    assert r.status_code in (400, 422)
    assert fhir.get("Patient").json()["total"] == 0


def test_update_after_delete_revives_with_next_version(fhir):
    created = fhir.create(uk.service_user(1))
    pid = created["id"]
    fhir.delete(f"Patient/{pid}")
    r = fhir.put(f"Patient/{pid}", created)
    assert r.status_code == 201
    assert r.json()["meta"]["versionId"] == "3"


def test_identical_update_creates_no_new_version(fhir):
    created = fhir.create(uk.service_user(1))
    pid = created["id"]
    again = {k: v for k, v in created.items() if k != "meta"}
    r = fhir.put(f"Patient/{pid}", again)
    assert r.status_code == 200
    assert r.headers["etag"] == 'W/"1"'
    assert r.json()["meta"]["versionId"] == "1"
    history = fhir.get(f"Patient/{pid}/_history").json()
    assert len(history["entry"]) == 1


def test_conditional_update_no_match_creates(fhir):
    number = nhs_number(4)
    r = fhir.put(f"Patient?identifier={NHS}|{number}", uk.service_user(4))
    assert r.status_code == 201, r.text
    assert r.headers["etag"] == 'W/"1"'


def test_conditional_update_one_match_updates(fhir):
    created = fhir.create(uk.service_user(4))
    r = fhir.put(f"Patient?identifier={NHS}|{nhs_number(4)}", uk.service_user(4, gender="male"))
    assert r.status_code == 200, r.text
    assert r.json()["id"] == created["id"]
    assert r.json()["meta"]["versionId"] == "2"
    assert fhir.get(f"Patient/{created['id']}").json()["gender"] == "male"


def test_conditional_update_many_matches_is_412(fhir):
    fhir.create(uk.service_user(1, family="Mistry"))
    fhir.create(uk.service_user(2, family="Mistry"))
    r = fhir.put("Patient?family=Mistry", uk.service_user(3, family="Mistry"))
    assert r.status_code == 412
    assert fhir.get("Patient?family=Mistry").json()["total"] == 2


def test_conditional_update_with_other_id_in_body_is_400(fhir):
    fhir.create(uk.service_user(4))
    r = fhir.put(f"Patient?identifier={NHS}|{nhs_number(4)}", uk.service_user(4, id="not-the-match"))
    assert r.status_code == 400


def test_conditional_update_no_match_with_id_of_another_resource_does_not_overwrite_it(fhir):
    other = fhir.create(uk.service_user(5, family="Other"))
    r = fhir.put(f"Patient?identifier={NHS}|{nhs_number(6)}", uk.service_user(6, id=other["id"]))
    assert r.status_code in (400, 409, 412), r.text
    assert fhir.get(f"Patient/{other['id']}").json()["name"][0]["family"] == "Other"


# -- patch ---------------------------------------------------------------------------------------
def _patch(fhir, path, ops, ctype="application/json-patch+json", **headers):  # type: ignore[no-untyped-def]
    import orjson

    return fhir.request("PATCH", path, content=orjson.dumps(ops), headers={"Content-Type": ctype, **headers})


def test_patch_applies_a_json_patch(fhir):
    created = fhir.create(uk.service_user(1))
    pid = created["id"]
    r = _patch(fhir, f"Patient/{pid}", [{"op": "replace", "path": "/gender", "value": "male"},
                                        {"op": "add", "path": "/active", "value": True}])
    assert r.status_code == 200, r.text
    assert r.json()["gender"] == "male" and r.json()["active"] is True
    assert r.headers["etag"] == 'W/"2"'
    assert fhir.get(f"Patient/{pid}").json()["gender"] == "male"
    history = fhir.get(f"Patient/{pid}/_history").json()
    assert history["entry"][0]["request"]["method"] == "PATCH"


def test_patch_with_if_match_mismatch_is_412(fhir):
    created = fhir.create(uk.service_user(1))
    r = _patch(fhir, f"Patient/{created['id']}", [{"op": "replace", "path": "/gender", "value": "male"}],
               **{"If-Match": 'W/"5"'})
    assert r.status_code == 412


@pytest.mark.parametrize("ops", [
    [{"op": "replace", "path": "/no/such/path", "value": 1}],
    [{"op": "test", "path": "/gender", "value": "male"}],
    [{"op": "bogus", "path": "/gender"}],
    [{"op": "replace", "path": "/id", "value": "other"}],
    [{"op": "replace", "path": "/gender", "value": "not-a-gender"}],
])
def test_bad_patch_is_422(fhir, ops):
    created = fhir.create(uk.service_user(1))
    r = _patch(fhir, f"Patient/{created['id']}", ops)
    assert r.status_code == 422, r.text
    assert fhir.get(f"Patient/{created['id']}").headers["etag"] == 'W/"1"'


def test_patch_that_is_not_an_array_is_400(fhir):
    created = fhir.create(uk.service_user(1))
    r = _patch(fhir, f"Patient/{created['id']}", {"op": "replace"})
    assert r.status_code == 400


def test_patch_with_wrong_content_type_is_415(fhir):
    created = fhir.create(uk.service_user(1))
    r = _patch(fhir, f"Patient/{created['id']}", [{"op": "replace", "path": "/gender", "value": "male"}],
               ctype="application/fhir+json")
    assert r.status_code == 415


def test_patch_of_missing_resource_is_404(fhir):
    r = _patch(fhir, "Patient/nope", [{"op": "replace", "path": "/gender", "value": "male"}])
    assert r.status_code == 404


# -- delete --------------------------------------------------------------------------------------
def test_delete_then_delete_again_then_read(fhir):
    created = fhir.create(uk.service_user(1))
    pid = created["id"]
    first = fhir.delete(f"Patient/{pid}")
    assert first.status_code == 200
    assert first.json()["resourceType"] == "OperationOutcome"
    assert first.headers["etag"] == 'W/"2"'
    again = fhir.delete(f"Patient/{pid}")
    assert again.status_code == 200
    assert fhir.get(f"Patient/{pid}").status_code == 410
    assert fhir.get("Patient").json()["total"] == 0


def test_delete_of_unknown_resource_is_200(fhir):
    assert fhir.delete("Patient/never-there").status_code == 200


def test_delete_removes_from_search(fhir):
    created = fhir.create(uk.service_user(1))
    fhir.delete(f"Patient/{created['id']}")
    assert fhir.get(f"Patient?identifier={NHS}|{nhs_number(1)}").json()["total"] == 0


def test_conditional_delete_single_match(fhir):
    keep = fhir.create(uk.service_user(1))
    gone = fhir.create(uk.service_user(2))
    r = fhir.delete(f"Patient?identifier={NHS}|{nhs_number(2)}")
    assert r.status_code == 200
    assert fhir.get(f"Patient/{gone['id']}").status_code == 410
    assert fhir.get(f"Patient/{keep['id']}").status_code == 200


def test_conditional_delete_no_match_is_200(fhir):
    r = fhir.delete(f"Patient?identifier={NHS}|{nhs_number(9)}")
    assert r.status_code == 200


def test_conditional_delete_many_matches_is_412(fhir):
    a = fhir.create(uk.service_user(1, family="Chauhan"))
    b = fhir.create(uk.service_user(2, family="Chauhan"))
    r = fhir.delete("Patient?family=Chauhan")
    assert r.status_code == 412
    assert fhir.get(f"Patient/{a['id']}").status_code == 200
    assert fhir.get(f"Patient/{b['id']}").status_code == 200


def test_conditional_delete_without_criteria_is_refused(fhir):
    fhir.create(uk.service_user(1))
    r = fhir.delete("Patient")
    assert r.status_code in (400, 405, 412)
    assert fhir.get("Patient").json()["total"] == 1
