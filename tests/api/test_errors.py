"""Every error status over HTTP, on SQLite and PostgreSQL, each answered with an
OperationOutcome (and nothing stored by a refused write)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import create_engine, text

from tests.api import ukdata as uk
from tests.conftest import make_url


@pytest.fixture(scope="module")
def data(module_fhir):
    kept = module_fhir.create(uk.service_user(1))
    gone = module_fhir.create(uk.service_user(2))
    assert module_fhir.delete(f"Patient/{gone['id']}").status_code == 200
    module_fhir.create(uk.service_user(3, family="Khan"))
    module_fhir.create(uk.service_user(4, family="Khan"))
    return {"kept": kept, "gone": gone}


def outcome(r, status, code=None):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/fhir+json")
    body = r.json()
    assert body["resourceType"] == "OperationOutcome", body
    assert body["issue"][0]["severity"] == "error"
    if code:
        assert body["issue"][0]["code"] == code, body
    return body["issue"]


def count(fhir):
    return fhir.get("Patient?_summary=count").json()["total"]


def test_400_bad_search_value(module_fhir, data):
    outcome(module_fhir.get("Patient?birthdate=last-tuesday"), 400, "invalid")


def test_400_bad_json(module_fhir, data):
    r = module_fhir.post("Patient", content=b"{not json", headers={"Content-Type": "application/fhir+json"})
    outcome(r, 400, "structure")


def test_400_update_id_mismatch(module_fhir, data):
    kept = data["kept"]
    outcome(module_fhir.put(f"Patient/{kept['id']}", dict(kept, id="other")), 400)


def test_401_without_token(module_fhir, data):
    r = module_fhir.as_(None).get(f"Patient/{data['kept']['id']}")
    outcome(r, 401, "login")
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_403_interaction_not_granted(module_fhir, module_app, data):
    reader = module_fhir.as_(module_app.state.api.tokens.issue("reader", "system/*.rs"))
    before = count(module_fhir)
    outcome(reader.post("Patient", uk.service_user(5)), 403, "forbidden")
    outcome(reader.delete(f"Patient/{data['kept']['id']}"), 403, "forbidden")
    assert count(module_fhir) == before


@pytest.mark.parametrize("path", ["Medication/1", "Medication", "Nothing?name=x"])
def test_404_unknown_type(module_fhir, data, path):
    outcome(module_fhir.get(path), 404)


def test_404_unknown_id(module_fhir, data):
    outcome(module_fhir.get("Patient/no-such-id"), 404, "not-found")
    outcome(module_fhir.get(f"Patient/{data['kept']['id']}/_history/9"), 404, "not-found")


@pytest.mark.parametrize(("method", "path"), [("DELETE", "metadata"), ("PATCH", "Patient"), ("PUT", "")])
def test_405(module_fhir, data, method, path):
    outcome(module_fhir.request(method, path), 405, "not-supported")


@pytest.mark.parametrize("accept", ["application/fhir+xml", "application/xml", "text/html"])
def test_406_xml_accept(module_fhir, data, accept):
    outcome(module_fhir.get(f"Patient/{data['kept']['id']}", headers={"Accept": accept}), 406, "not-supported")
    outcome(module_fhir.get("Patient", headers={"Accept": accept}), 406)


def test_410_deleted(module_fhir, data):
    outcome(module_fhir.get(f"Patient/{data['gone']['id']}"), 410, "deleted")
    outcome(module_fhir.get(f"Patient/{data['gone']['id']}/_history/2"), 410)


def test_412_if_match_and_ambiguous_conditions(module_fhir, data):
    kept = data["kept"]
    outcome(module_fhir.put(f"Patient/{kept['id']}", dict(kept, gender="male"), headers={"If-Match": 'W/"7"'}),
            412, "conflict")
    before = count(module_fhir)
    outcome(module_fhir.post("Patient", uk.service_user(6), headers={"If-None-Exist": "family=Khan"}), 412)
    outcome(module_fhir.put("Patient?family=Khan", uk.service_user(6, family="Khan")), 412)
    outcome(module_fhir.delete("Patient?family=Khan"), 412)
    assert count(module_fhir) == before
    assert module_fhir.get(f"Patient/{kept['id']}").json()["meta"]["versionId"] == "1"


@pytest.mark.parametrize("ctype", ["application/fhir+xml", "text/plain"])
def test_415_unsupported_content_type(module_fhir, data, ctype):
    r = module_fhir.post("Patient", content=b"<Patient/>", headers={"Content-Type": ctype})
    outcome(r, 415, "not-supported")


def test_415_patch_needs_json_patch(module_fhir, data):
    outcome(module_fhir.request("PATCH", f"Patient/{data['kept']['id']}", json=[]), 415)


def _bad_nhs():
    res = uk.service_user(9)
    res["identifier"][0]["value"] = "9990000019"
    return res


@pytest.mark.parametrize(("body", "where"), [
    (uk.service_user(9, shoeSize=9), "shoeSize"),
    (uk.service_user(9, birthDate=19840517), "birthDate"),
    (uk.service_user(9, active="true"), "active"),
    (uk.service_user(9, gender="bogus"), "gender"),
    (_bad_nhs(), "identifier"),
    (uk.service_user(9, identifier=True), "identifier"),
    (uk.service_user(9, identifier={"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9990000018"}),
     "identifier"),
    (uk.practitioner(), "Practitioner"),
])
def test_422_invalid_content_stores_nothing(module_fhir, data, body, where):
    before = count(module_fhir)
    issues = outcome(module_fhir.post("Patient", body), 422)
    assert any(where in " ".join(i.get("expression", [])) + i.get("diagnostics", "") for i in issues), issues
    assert count(module_fhir) == before


def test_422_bad_code_in_a_required_binding_of_another_type(module_fhir, data):
    res = uk.referral(data["kept"]["id"], status="pending-review")
    issues = outcome(module_fhir.post("ServiceRequest", res), 422)
    assert any("status" in " ".join(i.get("expression", [])) for i in issues), issues
    assert module_fhir.get("ServiceRequest?_summary=count").json()["total"] == 0


def test_422_on_update_keeps_the_version(module_fhir, data):
    kept = data["kept"]
    outcome(module_fhir.put(f"Patient/{kept['id']}", dict(kept, gender="bogus")), 422)
    assert module_fhir.get(f"Patient/{kept['id']}").json()["meta"]["versionId"] == "1"


def test_409_concurrent_updates_of_one_version(module_fhir, module_backend, data):
    """Two updates made from the same version: the second to commit is refused with 409.

    PostgreSQL only, where writers run side by side; an outside transaction holds the row
    until both updates wait on it. (SQLite serialises every write, so neither can conflict.)
    """
    if not module_backend.startswith("postgresql"):
        pytest.skip("SQLite serialises writers: two updates of one version cannot race")
    p = module_fhir.create(uk.service_user(10))
    engine = create_engine(make_url(module_backend))
    results: list = []
    with engine.connect() as hold, engine.connect() as watch:
        tx = hold.begin()
        hold.execute(text("SELECT pk FROM resource WHERE resource_type = 'Patient' AND id = :id FOR UPDATE"),
                     {"id": p["id"]})

        def put(gender):
            results.append(module_fhir.put(f"Patient/{p['id']}", dict(p, gender=gender)))

        threads = [threading.Thread(target=put, args=(g,)) for g in ("male", "other")]
        for t in threads:
            t.start()
        waiting = 0
        while waiting < 2:
            waiting = watch.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )).scalar_one()
            watch.commit()
        tx.rollback()
        for t in threads:
            t.join()
    engine.dispose()
    assert sorted(r.status_code for r in results) == [200, 409]
    outcome(next(r for r in results if r.status_code == 409), 409, "conflict")
    assert module_fhir.get(f"Patient/{p['id']}").json()["meta"]["versionId"] == "2"
