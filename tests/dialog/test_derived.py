"""Derived Observations over HTTP, on SQLite and PostgreSQL: written with their response in
one transaction, replaced on update, removed on delete, never written by clients."""

from __future__ import annotations

from typing import Any

from server.dialog.derived import observation_id
from tests.conftest import Fhir
from tests.dialog.dialogdata import ITEM_CODES, RATINGS, SCORE, SNOMED, TAG, response, with_answer

KEYS = ["sqol", "treatment", *(f"dialog-{n}" for n in range(1, 12))]


def derived(fhir: Fhir, response_id: str) -> list[dict[str, Any]]:
    r = fhir.get(f"Observation?derived-from=QuestionnaireResponse/{response_id}&_sort=code&_count=100")
    assert r.status_code == 200, r.text
    return [e["resource"] for e in r.json().get("entry", [])]


def by_code(observations: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["code"]["coding"][0]["code"]: o for o in observations}


def total(fhir: Fhir, query: str) -> int:
    r = fhir.get(f"{query}{'&' if '?' in query else '?'}_total=accurate")
    assert r.status_code == 200, r.text
    return int(r.json()["total"])


def put(fhir: Fhir, res: dict[str, Any], id: str = "qr1") -> Any:
    return fhir.put(f"QuestionnaireResponse/{id}", dict(res, id=id))


def test_a_completed_response_gets_13_derived_observations(fhir: Fhir) -> None:
    r = put(fhir, response())
    assert r.status_code == 201, r.text
    found = by_code(derived(fhir, "qr1"))
    assert set(found) == {"sqol", "treatment", *ITEM_CODES}
    sqol, treatment = found["sqol"], found["treatment"]
    assert sqol["valueQuantity"] == {"value": 4.75, "unit": "{score}", "system": "http://unitsofmeasure.org",
                                     "code": "{score}"}
    assert treatment["valueQuantity"]["value"] == 4.0
    assert sqol["code"]["coding"][0]["system"] == SCORE
    assert len(sqol["hasMember"]) == 8 and len(treatment["hasMember"]) == 3
    assert treatment["hasMember"][0]["reference"] == f"Observation/{observation_id('qr1', 'dialog-9')}"
    for n, code in enumerate(ITEM_CODES):
        item = found[code]
        assert item["code"]["coding"][0]["system"] == SNOMED
        assert item["valueInteger"] == RATINGS[n]
        assert item["component"][0]["valueBoolean"] is (RATINGS[n] <= 3)
    for key, obs in zip(KEYS, [sqol, treatment, *(found[c] for c in ITEM_CODES)], strict=True):
        assert obs["id"] == observation_id("qr1", key)
        assert obs["status"] == "final"
        assert obs["subject"] == {"reference": "Patient/p1"}
        assert obs["effectiveDateTime"] == "2026-11-02T10:00:00+00:00"
        assert obs["derivedFrom"] == [{"reference": "QuestionnaireResponse/qr1"}]
        assert obs["category"][0]["coding"][0]["code"] == "survey"
        assert {"system": TAG, "code": "derived"}.items() <= obs["meta"]["tag"][0].items()


def test_a_refused_response_stores_nothing(fhir: Fhir) -> None:
    bad = with_answer(response(coded=False), 3, {"valueInteger": 8})
    r = fhir.post("QuestionnaireResponse", bad)
    assert r.status_code == 422, r.text
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["expression"] == ["QuestionnaireResponse.item[3].item[0].answer[0]"]
    assert total(fhir, "QuestionnaireResponse") == 0 and total(fhir, "Observation") == 0


def test_update_replaces_them_under_the_same_ids(fhir: Fhir) -> None:
    put(fhir, response())
    before = {o["id"]: o for o in derived(fhir, "qr1")}
    changed = [7] * 8 + [1, 2, 2]  # 7.00 and 5/3 = 1.67
    r = put(fhir, response(changed, authored="2026-11-09T09:00:00+00:00"))
    assert r.status_code == 200, r.text
    after = {o["id"]: o for o in derived(fhir, "qr1")}
    assert set(after) == set(before)
    found = by_code(list(after.values()))
    assert found["sqol"]["valueQuantity"]["value"] == 7.0
    assert found["treatment"]["valueQuantity"]["value"] == 1.67
    assert found[ITEM_CODES[10]]["valueInteger"] == 2
    assert {o["effectiveDateTime"] for o in after.values()} == {"2026-11-09T09:00:00+00:00"}
    assert {o["meta"]["versionId"] for o in after.values()} == {"2"}
    assert total(fhir, "Observation") == 13


def test_rewriting_the_same_response_writes_nothing_new(fhir: Fhir) -> None:
    put(fhir, response())
    again = put(fhir, response())
    assert again.status_code == 200 and again.json()["meta"]["versionId"] == "1"
    assert {o["meta"]["versionId"] for o in derived(fhir, "qr1")} == {"1"}
    history = fhir.get(f"Observation/{observation_id('qr1', 'sqol')}/_history").json()
    assert len(history["entry"]) == 1


def test_delete_removes_them(fhir: Fhir) -> None:
    put(fhir, response())
    assert fhir.delete("QuestionnaireResponse/qr1").status_code == 200
    assert derived(fhir, "qr1") == []
    assert fhir.get(f"Observation/{observation_id('qr1', 'sqol')}").status_code == 410
    # and a response written again under the same id gets them back
    assert put(fhir, response()).status_code == 201
    assert len(derived(fhir, "qr1")) == 13


def test_entered_in_error_removes_them_and_in_progress_gets_none(fhir: Fhir) -> None:
    put(fhir, response())
    r = put(fhir, response(status="entered-in-error"))
    assert r.status_code == 200, r.text
    assert derived(fhir, "qr1") == []
    partial = response(status="in-progress")
    del partial["item"][4:]
    assert put(fhir, partial, "qr2").status_code == 201
    assert derived(fhir, "qr2") == []
    assert total(fhir, "Observation") == 0


def test_conditional_create_and_update_derive_too(fhir: Fhir) -> None:
    res = response()
    res["identifier"] = {"system": "https://fhir.carebridge.example/Id/dialog", "value": "d1"}
    r = fhir.post("QuestionnaireResponse", res,
                  headers={"If-None-Exist": "identifier=https://fhir.carebridge.example/Id/dialog|d1"})
    assert r.status_code == 201, r.text
    qr_id = r.json()["id"]
    assert len(derived(fhir, qr_id)) == 13
    r = fhir.put("QuestionnaireResponse?identifier=https://fhir.carebridge.example/Id/dialog|d1",
                 response([1] * 11) | {"identifier": res["identifier"]})
    assert r.status_code == 200 and r.json()["id"] == qr_id, r.text
    assert by_code(derived(fhir, qr_id))["sqol"]["valueQuantity"]["value"] == 1.0


def test_patch_rederives(fhir: Fhir) -> None:
    put(fhir, response())
    ops = [{"op": "replace", "path": "/item/8/item/0/answer/0/valueCoding/code", "value": "7"}]
    r = fhir.request("PATCH", "QuestionnaireResponse/qr1", json=ops,
                     headers={"Content-Type": "application/json-patch+json"})
    assert r.status_code == 200, r.text
    assert by_code(derived(fhir, "qr1"))["treatment"]["valueQuantity"]["value"] == 5.0  # (7+3+5)/3
    bad = [{"op": "replace", "path": "/item/8/item/0/answer/0/valueCoding/code", "value": "8"}]
    r = fhir.request("PATCH", "QuestionnaireResponse/qr1", json=bad,
                     headers={"Content-Type": "application/json-patch+json"})
    assert r.status_code == 422, r.text


def entry(method: str, url: str, resource: dict[str, Any] | None = None, full_url: str | None = None) -> Any:
    out: dict[str, Any] = {"request": {"method": method, "url": url}}
    if resource is not None:
        out["resource"] = resource
    if full_url:
        out["fullUrl"] = full_url
    return out


def test_transaction_entries_derive_with_resolved_references(fhir: Fhir) -> None:
    patient = "urn:uuid:5d0f7f4e-4d36-4d8b-8a0e-0c1b2f0d6a01"
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        entry("POST", "Patient", {"resourceType": "Patient", "name": [{"family": "Hart"}]}, patient),
        entry("POST", "QuestionnaireResponse", response(subject=patient)),
    ]}
    r = fhir.post("", bundle)
    assert r.status_code == 200, r.text
    pat_id = r.json()["entry"][0]["response"]["location"].split("/")[-3]
    qr_id = r.json()["entry"][1]["response"]["location"].split("/")[-3]
    found = derived(fhir, qr_id)
    assert len(found) == 13 and {o["subject"]["reference"] for o in found} == {f"Patient/{pat_id}"}


def test_a_failing_transaction_leaves_neither_response_nor_observations(fhir: Fhir) -> None:
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        entry("PUT", "QuestionnaireResponse/qr1", response(id="qr1")),
        entry("GET", "Patient/not-there"),
    ]}
    assert fhir.post("", bundle).status_code == 404
    assert total(fhir, "QuestionnaireResponse") == 0 and total(fhir, "Observation") == 0
    # a client write to a derived Observation fails the transaction after the response was written
    sneaky = {"resourceType": "Observation", "id": observation_id("qr1", "sqol"), "status": "final",
              "code": {"text": "mine"}}
    bundle["entry"][1] = entry("PUT", f"Observation/{sneaky['id']}", sneaky)
    r = fhir.post("", bundle)
    assert r.status_code == 422, r.text
    assert total(fhir, "QuestionnaireResponse") == 0 and total(fhir, "Observation") == 0


def test_clients_cannot_write_derived_observations(fhir: Fhir) -> None:
    put(fhir, response())
    sqol_id = observation_id("qr1", "sqol")
    current = fhir.get(f"Observation/{sqol_id}").json()
    edited = dict(current, valueQuantity=dict(current["valueQuantity"], value=1))
    r = fhir.put(f"Observation/{sqol_id}", edited)
    assert r.status_code == 422 and r.json()["issue"][0]["code"] == "business-rule", r.text
    untagged = {k: v for k, v in edited.items() if k != "meta"}
    assert fhir.put(f"Observation/{sqol_id}", untagged).status_code == 422
    assert fhir.delete(f"Observation/{sqol_id}").status_code == 409
    forged = {k: v for k, v in current.items() if k not in ("id",)}
    assert fhir.post("Observation", forged).status_code == 422
    assert fhir.get(f"Observation/{sqol_id}").json()["meta"]["versionId"] == "1"
    # Observations of the client's own, even about DIALOG, are theirs to write
    own = {"resourceType": "Observation", "status": "final", "code": current["code"],
           "subject": {"reference": "Patient/p1"}, "valueQuantity": {"value": 3}}
    created = fhir.create(own)
    assert fhir.delete(f"Observation/{created['id']}").status_code == 200


def test_derivation_needs_no_observation_scope(fhir: Fhir, token_for: Any) -> None:
    writer = fhir.as_(token_for("system/QuestionnaireResponse.cu system/QuestionnaireResponse.r"))
    r = put(writer, response())
    assert r.status_code == 201, r.text
    assert len(derived(fhir, "qr1")) == 13
    assert writer.get(f"Observation/{observation_id('qr1', 'sqol')}").status_code == 403


def test_security_labels_of_the_response_carry_over(fhir: Fhir) -> None:
    labels = [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}]
    res = response()
    res["meta"] = {"security": labels}
    put(fhir, res)
    assert {str(o["meta"]["security"]) for o in derived(fhir, "qr1")} == {str(labels)}
    del res["meta"]
    put(fhir, res)
    assert all("security" not in o["meta"] for o in derived(fhir, "qr1"))
