"""Writes and consent: conditional writes match only what the caller sees, a hidden
resource cannot be changed or probed, and a change of Consent counts from the next
request. Each test gets a store of its own (the scenario, on SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import Fhir
from tests.consent.scenario import CALLERS, RESOURCES, SNOMED, _actor, _classes, _consent


@pytest.fixture
def store(fhir: Fhir) -> Fhir:
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in RESOURCES
    ]}
    assert fhir.post("", bundle).status_code == 200
    return fhir


@pytest.fixture
def caller(store: Fhir, app: Any) -> Callable[[str], Fhir]:
    def make(name: str) -> Fhir:
        claims = dict(CALLERS[name])
        scope = claims.pop("scope")
        return store.as_(app.state.api.tokens.issue(f"client-{name}", scope, **claims))
    return make


def _new(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource as a client creates it: the server gives the id."""
    return {k: v for k, v in resource.items() if k != "id"}


def _condition(code: str) -> dict[str, Any]:
    return {"resourceType": "Condition", "subject": {"reference": "Patient/a"},
            "code": {"coding": [{"system": SNOMED, "code": code}]}}


def test_conditional_create_does_not_match_a_hidden_resource(store, caller):
    gp = caller("gp")
    # only the restricted Condition, which the GP may not see, has this code
    r = gp.post("Condition", _condition("69322001"), headers={"If-None-Exist": "code=69322001"})
    assert r.status_code == 201
    # the custodian sees both: the condition now matches two, and says so
    again = caller("custodian").post("Condition", _condition("69322001"), headers={"If-None-Exist": "code=69322001"})
    assert again.status_code == 412


def test_conditional_update_creates_rather_than_overwriting_a_hidden_match(store, caller):
    gp = caller("gp")
    r = gp.put("Condition?code=69322001", _condition("69322001"))
    assert r.status_code == 201
    hidden = store.get("Condition/cond-a-restricted").json()
    assert hidden["meta"]["versionId"] == "1"


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_a_hidden_resource_cannot_be_changed_and_answers_like_a_missing_one(store, caller, method):
    gp = caller("gp")
    body = dict(_condition("69322001"), id="cond-a-restricted")
    hidden = gp.request(method, "Condition/cond-a-restricted", json=body if method == "PUT" else None)
    assert hidden.status_code == 404
    assert "cond-a-restricted" in hidden.text and "restricted" not in hidden.text.replace("cond-a-restricted", "")
    current = store.get("Condition/cond-a-restricted")
    assert current.status_code == 200 and current.json()["meta"]["versionId"] == "1"


def test_break_glass_reads_but_does_not_widen_writes(store, caller):
    bg = caller("break-glass")
    assert bg.get("Condition/cond-a-restricted").status_code == 200
    body = dict(_condition("69322001"), id="cond-a-restricted")
    assert bg.put("Condition/cond-a-restricted", body).status_code == 404


def test_revoking_a_consent_takes_effect_on_the_next_request(store, caller):
    gp = caller("gp")
    assert gp.get("CarePlan/cp-a").status_code == 200
    consent = store.get("Consent/consent-a-gp").json()
    consent["status"] = "inactive"
    assert store.put("Consent/consent-a-gp", consent).status_code == 200
    assert gp.get("CarePlan/cp-a").status_code == 404
    assert gp.get("CarePlan?_total=accurate").json()["total"] == 0
    consent["status"] = "active"
    assert store.put("Consent/consent-a-gp", consent).status_code == 200
    assert gp.get("CarePlan/cp-a").status_code == 200
    assert store.delete("Consent/consent-a-gp").status_code in (200, 204)
    assert gp.get("CarePlan/cp-a").status_code == 404


def test_a_new_consent_shares_from_the_next_request(store, caller):
    other = caller("other-gp")
    assert other.get("Patient/b").status_code == 404
    store.create(_new(_consent("consent-b-gp2", "b", {"type": "permit", "actor": [_actor("Organization/gp2")],
                                                      "class": _classes("Patient")})))
    assert other.get("Patient/b").status_code == 200
    assert other.get("ServiceRequest/sr-b").status_code == 404  # the class limits it to the Patient


OVERRIDE = "https://fhir.carebridge.example/StructureDefinition/consent-override"
CAPACITY = "https://fhir.carebridge.example/StructureDefinition/consent-capacity"


def _override(reason: str = "risk", drop: tuple[str, ...] = ()) -> dict[str, Any]:
    parts = [
        {"url": "reason", "valueCodeableConcept": {"coding": [{
            "system": "https://fhir.carebridge.example/CodeSystem/consent-override-reason", "code": reason}]}},
        {"url": "rationale", "valueString": "Serious risk to others; the GP must know of the crisis plan."},
        {"url": "decidedBy", "valueReference": {"reference": "Practitioner/kw-okafor"}},
        {"url": "date", "valueDateTime": "2026-12-01T10:00:00Z"},
    ]
    return {"url": OVERRIDE, "extension": [p for p in parts if p["url"] not in drop]}


def _refusal_and_override(**override: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    refusal = _new(_consent("consent-b-refusal", "b", {"type": "deny"}))
    shared = _new(_consent("consent-b-override", "b", {"type": "permit", "actor": [_actor("Organization/gp1")],
                                                        "class": _classes("CarePlan")}))
    shared["extension"] = [_override(**override)]
    return refusal, shared


def test_a_refusal_withdraws_every_other_permit(store, caller):
    gp = caller("gp")
    assert gp.get("CarePlan/cp-a").status_code == 200
    refusal = _new(_consent("consent-a-refusal", "a", {"type": "deny"}))
    store.create(refusal)
    assert gp.get("CarePlan/cp-a").status_code == 404
    # the trust's own direct care is not a sharing the refusal withdraws
    assert caller("custodian").get("CarePlan/cp-a").status_code == 200


def test_an_override_recorded_with_its_reasons_shares_despite_a_refusal(store, caller):
    refusal, shared = _refusal_and_override()
    store.create(refusal)
    gp = caller("gp")
    assert gp.get("CarePlan/cp-b").status_code == 404
    store.create(shared)
    assert gp.get("CarePlan/cp-b").status_code == 200
    assert gp.get("ServiceRequest/sr-b").status_code == 404


@pytest.mark.parametrize("missing", ["reason", "rationale", "decidedBy", "date"])
def test_an_override_that_does_not_say_who_when_and_why_is_refused(store, missing):
    _, shared = _refusal_and_override(drop=(missing,))
    r = store.post("Consent", shared)
    assert r.status_code == 422
    issue = r.json()["issue"][0]
    assert issue["expression"] == ["Consent.extension[0]"]
    assert store.get("Consent?patient=Patient/b&_total=accurate").json()["total"] == 1  # only the proposed one


def test_an_override_for_lack_of_capacity_needs_the_capacity_assessment(store):
    _, shared = _refusal_and_override(reason="lacks-capacity")
    r = store.post("Consent", shared)
    assert r.status_code == 422 and "capacity" in r.json()["issue"][0]["diagnostics"]
    shared["extension"].append({"url": CAPACITY, "extension": [
        {"url": "hasCapacity", "valueBoolean": False},
        {"url": "assessor", "valueReference": {"reference": "Practitioner/kw-okafor"}},
        {"url": "date", "valueDateTime": "2026-11-30T15:00:00Z"},
    ]})
    assert store.post("Consent", shared).status_code == 201


def test_conditional_delete_matches_only_what_the_caller_sees(store, caller):
    r = caller("gp").delete("Condition?code=69322001")
    assert r.status_code in (200, 204)
    assert store.get("Condition/cond-a-restricted").status_code == 200
