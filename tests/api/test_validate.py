"""$validate over HTTP (system and type level, Parameters, ?profile=) and profile
validation on writes, on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import json
from typing import Any

from carebridge import paths

CB = "https://fhir.carebridge.example"
REFERRAL = f"{CB}/StructureDefinition/cap-referral"


def _example(name: str) -> dict[str, Any]:
    path = next((paths.PROFILES / "carebridge" / "example").glob(f"*-example-{name}.json"))
    return json.loads(path.read_text())


def _issues(r: Any) -> list[tuple[str, str, str]]:
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["resourceType"] == "OperationOutcome"
    return [(i["severity"], i["code"], (i.get("expression") or [""])[0]) for i in body["issue"]]


def _broken_referral() -> dict[str, Any]:
    res = _example("cap-referral")
    del res["id"]
    del res["requester"]
    return res


def test_type_level_validate_reports_profile_errors_and_stores_nothing(fhir):
    r = fhir.post("ServiceRequest/$validate", _broken_referral())
    assert ("error", "required", "ServiceRequest.requester") in _issues(r)
    assert fhir.get("ServiceRequest").json().get("entry", []) == []


def test_system_level_validate_of_a_valid_resource(fhir):
    res = _example("jane")
    res["text"] = {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Jane Smith</div>"}
    assert _issues(fhir.post("$validate", res)) == [("information", "informational", "")]
    assert fhir.get("Patient").json().get("entry", []) == []


def test_parameters_body_with_a_profile(fhir):
    res = _broken_referral()
    del res["meta"]
    plain = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": res}]}
    assert not [i for i in _issues(fhir.post("ServiceRequest/$validate", plain)) if i[0] == "error"]
    asked = copy.deepcopy(plain)
    asked["parameter"].append({"name": "profile", "valueUri": REFERRAL})
    assert ("error", "required", "ServiceRequest.requester") in _issues(fhir.post("$validate", asked))


def test_profile_in_the_query(fhir):
    res = _broken_referral()
    del res["meta"]
    assert ("error", "required", "ServiceRequest.requester") in _issues(
        fhir.post("ServiceRequest/$validate", res, params={"profile": REFERRAL}))
    unknown = _issues(fhir.post("ServiceRequest/$validate", res, params={"profile": "https://example.org/x"}))
    assert ("error", "not-supported", "Parameters.profile") in unknown


def test_unknown_claimed_profile_is_a_warning(fhir):
    res = _example("jane")
    res["meta"]["profile"] = ["https://example.org/StructureDefinition/unheard-of"]
    assert ("warning", "not-supported", "Patient.meta.profile") in _issues(fhir.post("Patient/$validate", res))


def test_validate_needs_a_token_and_a_resource(fhir):
    assert fhir.as_(None).post("$validate", _example("jane")).status_code == 401
    assert fhir.post("Patient/$validate", _example("cap-referral")).status_code == 400
    assert fhir.post("$validate", [1, 2]).status_code == 400
    reader = fhir.as_(fhir.client.app.state.api.tokens.issue("reader", "system/Patient.r"))
    assert reader.post("$validate", _example("jane")).status_code == 200


def test_writes_are_refused_on_profile_errors_and_accepted_with_warnings(fhir):
    r = fhir.post("ServiceRequest", _broken_referral())
    assert r.status_code == 422, r.text
    expressions = [e for i in r.json()["issue"] for e in i.get("expression", [])]
    assert "ServiceRequest.requester" in expressions
    res = _example("jane")
    del res["id"]
    res["meta"]["profile"].append("https://example.org/StructureDefinition/unheard-of")
    assert fhir.post("Patient", res).status_code == 201  # warnings (dom-6, unknown profile) do not block


def test_transaction_entries_are_validated_against_their_profiles(fhir):
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": _broken_referral(), "request": {"method": "POST", "url": "ServiceRequest"}}]}
    r = fhir.post("", bundle)
    assert r.status_code == 422, r.text
    assert fhir.get("ServiceRequest").json().get("entry", []) == []


def test_the_capability_statement_lists_validate(fhir):
    statement = fhir.get("metadata").json()
    rest = statement["rest"][0]
    assert {"name": "validate"}.items() <= rest["operation"][0].items()
    patient = next(r for r in rest["resource"] if r["type"] == "Patient")
    assert "validate" in {o["name"] for o in patient["operation"]}
