"""One AuditEvent per REST interaction, through real HTTP, on SQLite and PostgreSQL: the
subtype, action, outcome and entities of each kind."""

from __future__ import annotations

import base64
from typing import Any

from fhir.resources.R4B.auditevent import AuditEvent

from server.audit.events import CLIENT_ID, ODS, REQUEST_ID
from server.validation.resource import ResourceValidator
from tests.api import ukdata as uk
from tests.audit.conftest import rid


def _refs(event: dict[str, Any], role: str) -> list[str]:
    return [e["what"]["reference"] for e in event.get("entity", [])
            if e.get("role", {}).get("code") == role and "reference" in e.get("what", {})]


def patients(event: dict[str, Any]) -> list[str]:
    return _refs(event, "1")


def data(event: dict[str, Any]) -> list[str]:
    return _refs(event, "4")


def kind(event: dict[str, Any]) -> tuple[str, str, str]:
    return event["subtype"][0]["code"], event["action"], event["outcome"]


def call(fhir: Any, method: str, path: str, **kw: Any) -> tuple[Any, dict[str, Any]]:
    """Make one request with a fresh X-Request-Id; its response and its AuditEvent."""
    request_id = rid()
    headers = {"X-Request-Id": request_id, **kw.pop("headers", {})}
    response = fhir.request(method, path, headers=headers, **kw)
    assert response.headers["x-request-id"] == request_id
    return response, fhir.event_for(request_id)


def test_every_interaction_has_its_subtype_action_outcome_and_entities(audited):
    _, ev = call(audited, "POST", "Patient", json=uk.service_user(1))
    pid = ev["entity"][0]["what"]["reference"].split("/")[1]
    assert kind(ev) == ("create", "C", "0")
    assert patients(ev) == [f"Patient/{pid}"] and data(ev) == [f"Patient/{pid}/_history/1"]

    r, ev = call(audited, "POST", "Observation", json=uk.observation(pid))
    oid = r.json()["id"]
    assert kind(ev) == ("create", "C", "0")
    assert patients(ev) == [f"Patient/{pid}"] and data(ev) == [f"Observation/{oid}/_history/1"]

    _, ev = call(audited, "GET", f"Observation/{oid}")
    assert kind(ev) == ("read", "R", "0")
    assert patients(ev) == [f"Patient/{pid}"] and data(ev) == [f"Observation/{oid}/_history/1"]

    _, ev = call(audited, "GET", f"Observation/{oid}/_history/1")
    assert kind(ev) == ("vread", "R", "0") and data(ev) == [f"Observation/{oid}/_history/1"]

    body = audited.get(f"Observation/{oid}").json()
    body["status"] = "amended"
    _, ev = call(audited, "PUT", f"Observation/{oid}", json=body)
    assert kind(ev) == ("update", "U", "0") and data(ev) == [f"Observation/{oid}/_history/2"]
    assert patients(ev) == [f"Patient/{pid}"]

    made = dict(uk.observation(pid), id="made-by-put", status="preliminary")
    _, ev = call(audited, "PUT", "Observation/made-by-put", json=made)
    assert kind(ev) == ("update", "C", "0")

    _, ev = call(audited, "PATCH", f"Observation/{oid}", content=b'[{"op":"replace","path":"/status","value":"final"}]',
                 headers={"Content-Type": "application/json-patch+json"})
    assert kind(ev) == ("patch", "U", "0") and data(ev) == [f"Observation/{oid}/_history/3"]

    _, ev = call(audited, "GET", f"Observation?subject=Patient/{pid}&status=final")
    assert kind(ev) == ("search-type", "E", "0")
    assert data(ev) == [f"Observation/{oid}/_history/3"] and patients(ev) == [f"Patient/{pid}"]
    (query,) = [e for e in ev["entity"] if e.get("role", {}).get("code") == "24"]
    assert "subject=Patient" in base64.b64decode(query["query"]).decode()
    assert query["description"].startswith("GET /fhir/Observation?")

    _, ev = call(audited, "POST", "Observation/_search", content=f"subject=Patient/{pid}".encode(),
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert kind(ev) == ("search-type", "E", "0") and len(data(ev)) == 2

    _, ev = call(audited, "GET", "?_type=Patient")
    assert kind(ev) == ("search-system", "E", "0") and data(ev) == [f"Patient/{pid}/_history/1"]

    _, ev = call(audited, "GET", f"Observation/{oid}/_history")
    assert kind(ev) == ("history-instance", "R", "0") and len(data(ev)) == 3
    _, ev = call(audited, "GET", "Observation/_history")
    assert kind(ev) == ("history-type", "R", "0")
    _, ev = call(audited, "GET", "_history")
    assert kind(ev) == ("history-system", "R", "0")

    _, ev = call(audited, "GET", f"Patient/{pid}/$everything")
    assert kind(ev) == ("operation", "E", "0")
    assert {s["code"] for s in ev["subtype"]} == {"operation", "$everything"}
    assert patients(ev) == [f"Patient/{pid}"] and len(data(ev)) == 3

    _, ev = call(audited, "DELETE", f"Observation/{oid}")
    assert kind(ev) == ("delete", "D", "0") and data(ev) == [f"Observation/{oid}/_history/4"]
    assert patients(ev) == [f"Patient/{pid}"], "a deleted resource's patient comes from the version it replaced"

    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:1", "resource": uk.service_user(2), "request": {"method": "POST", "url": "Patient"}}]}
    r, ev = call(audited, "POST", "", json=bundle)
    new = r.json()["entry"][0]["response"]["location"].split("/fhir/")[1]
    assert kind(ev) == ("transaction", "E", "0") and data(ev) == [new]
    assert patients(ev) == ["/".join(new.split("/")[:2])]
    bundle["type"] = "batch"
    bundle["entry"][0]["resource"] = uk.service_user(3)
    _, ev = call(audited, "POST", "", json=bundle)
    assert kind(ev) == ("batch", "E", "0") and len(data(ev)) == 1


def test_agents_purpose_source_and_request_id(audited):
    _, ev = call(audited, "GET", "Patient?family=Nobody")
    user, client, org = ev["agent"]
    assert user["who"] == {"reference": "Practitioner/dr-khan"} and user["requestor"] is True
    assert client["who"]["identifier"] == {"system": CLIENT_ID, "value": "test-client"}
    assert client["network"] == {"address": "testclient", "type": "2"}
    assert org["who"]["identifier"] == {"system": ODS, "value": "RT5"}
    assert ev["purposeOfEvent"][0]["coding"][0]["code"] == "TREAT"
    assert ev["source"]["site"] == "RT5"
    (request,) = [e for e in ev["entity"] if e["type"]["code"] == "XrequestId"]
    assert request["what"]["identifier"]["system"] == REQUEST_ID


def test_a_request_without_x_request_id_is_recorded_with_the_id_it_was_given(audited):
    r = audited.get("Patient?family=Nobody")
    given = r.headers["x-request-id"]
    assert given
    assert audited.event_for(given)["subtype"][0]["code"] == "search-type"


def test_only_what_was_returned_is_recorded(audited):
    """A patient-scoped caller searching Observation: the event names the launch patient's
    observation, never the other patient's that the search did not return."""
    mine = audited.create(uk.service_user(1))["id"]
    theirs = audited.create(uk.service_user(2))["id"]
    own_obs = audited.create(uk.observation(mine))["id"]
    other_obs = audited.create(uk.observation(theirs))["id"]
    viewer = audited.as_(audited.mint("patient/Observation.rs", patient=mine))
    request_id = rid()
    r = viewer.get("Observation", headers={"X-Request-Id": request_id})
    assert [e["resource"]["id"] for e in r.json()["entry"]] == [own_obs]
    ev = audited.event_for(request_id)
    assert data(ev) == [f"Observation/{own_obs}/_history/1"] and patients(ev) == [f"Patient/{mine}"]
    assert theirs not in str(ev) and other_obs not in str(ev)

    request_id = rid()
    assert viewer.get(f"Observation/{other_obs}", headers={"X-Request-Id": request_id}).status_code == 404
    ev = audited.event_for(request_id)
    assert kind(ev) == ("read", "R", "4") and data(ev) == [] and patients(ev) == []


def test_search_names_the_patient_it_asks_about_and_every_patient_returned(audited):
    a = audited.create(uk.service_user(1))["id"]
    b = audited.create(uk.service_user(2))["id"]
    audited.create(uk.observation(a))
    audited.create(uk.observation(b))
    _, ev = call(audited, "GET", "Observation")
    assert sorted(patients(ev)) == sorted([f"Patient/{a}", f"Patient/{b}"])
    _, ev = call(audited, "GET", "Observation?patient=nobody-here")
    assert patients(ev) == ["Patient/nobody-here"] and data(ev) == []


def test_events_are_valid_fhir_r4(audited):
    pid = audited.create(uk.service_user(1))["id"]
    audited.get(f"Patient/{pid}")
    audited.get("Observation?code=x")
    audited.as_(None).get("Patient")
    audited.get("Patient/missing")
    events = audited.events()
    assert len(events) == 5
    validator = ResourceValidator()
    for event in events:
        validator.validate(event)
        AuditEvent.model_validate(event)


def test_auditors_search_by_date_patient_agent_type_subtype_outcome_and_request_id(audited):
    pid = audited.create(uk.service_user(1))["id"]
    request_id = rid()
    audited.get(f"Patient/{pid}", headers={"X-Request-Id": request_id})
    audited.settle()

    def ids(query: str) -> set[str]:
        r = audited.get(f"AuditEvent?{query}")
        assert r.status_code == 200, r.text
        return {e["resource"]["subtype"][0]["code"] for e in r.json().get("entry", [])}

    assert ids(f"patient=Patient/{pid}") == {"create", "read"}
    assert ids(f"request-id={request_id}") == {"read"}
    assert ids("subtype=http://hl7.org/fhir/restful-interaction|read") == {"read"}
    assert ids("type=rest&outcome=0&agent:identifier=https://fhir.carebridge.example/Id/client-id|test-client") \
        >= {"create", "read"}
    assert ids("agent=Practitioner/dr-khan&date=ge2020-01-01") >= {"create", "read"}
    assert ids("date=lt2020-01-01") == set()
    assert ids("purpose=TREAT") >= {"create", "read"}


def test_only_auditors_see_the_trail(audited):
    audited.get("Patient")
    audited.settle()
    auditor = audited.as_(audited.mint("system/AuditEvent.rs", fhirUser="Practitioner/ig-1", organization="RT5"))
    r = auditor.get("AuditEvent")
    assert r.status_code == 200 and r.json()["total"] >= 1
    event_id = r.json()["entry"][0]["resource"]["id"]
    assert auditor.get(f"AuditEvent/{event_id}").json()["id"] == event_id
    others = {
        "custodian clinician, * scope": audited.mint("system/*.rs", fhirUser="Practitioner/c", organization="RT5"),
        "GP practice naming AuditEvent": audited.mint("system/AuditEvent.rs", fhirUser="Practitioner/gp",
                                                      organization="C82001"),
    }
    for who, token in others.items():
        other = audited.as_(token)
        found = other.get("AuditEvent")
        assert found.status_code == 200 and found.json()["total"] == 0, who
        assert other.get(f"AuditEvent/{event_id}").status_code == 404, who
    assert auditor.post("AuditEvent", {"resourceType": "AuditEvent"}).status_code == 405


def test_audit_events_stay_out_of_the_clinical_store(audited):
    """Reading a record does not change it: no AuditEvent in history, $everything or search."""
    pid = audited.create(uk.service_user(1))["id"]
    for _ in range(3):
        audited.get(f"Patient/{pid}")
    audited.settle()
    assert len(audited.events(patient=f"Patient/{pid}")) == 4
    everything = audited.get(f"Patient/{pid}/$everything").json()
    assert [e["resource"]["resourceType"] for e in everything["entry"]] == ["Patient"]
    history = audited.get("_history").json()
    assert {e["resource"]["resourceType"] for e in history["entry"]} == {"Patient"}
    assert audited.app.state.api.repository.engine.url != audited.trail.store.engine.url


def test_who_looked_at_this_patient(audited):
    from server.audit.store import patient_accesses

    pid = audited.create(uk.service_user(1))["id"]
    other = audited.create(uk.service_user(2))["id"]
    viewer = audited.mint("system/*.rs", client="crisis-team", fhirUser="Practitioner/cr-1", organization="RT5")
    audited.as_(viewer).get(f"Patient/{pid}")
    audited.get(f"Patient/{other}")
    audited.settle()
    seen = patient_accesses(audited.trail.store, pid)
    assert [(e["subtype"][0]["code"], e["agent"][0]["who"].get("reference")) for e in seen] == [
        ("read", "Practitioner/cr-1"), ("create", "Practitioner/dr-khan")]
    assert patient_accesses(audited.trail.store, pid, count=1)[0]["subtype"][0]["code"] == "read"
