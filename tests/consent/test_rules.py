"""How a Consent is flattened into the rows the access predicate joins: input and rows side by side."""

from __future__ import annotations

from server.consent.rules import consent_rows
from tests.consent.scenario import RESOURCES


def _consent(id: str) -> dict:
    return next(r for r in RESOURCES if r.get("id") == id)


def test_nested_provisions_inherit_their_parents_criteria():
    rows = consent_rows(_consent("consent-a-gp"))
    # the opt-in baseline (root deny with exceptions) is no rule of its own
    assert [(r["node"], r["last"], r["permit"]) for r in rows.rules] == [(0, 1, True), (1, 1, False)]
    deny = [t for t in rows.terms if t["node"] == 1]
    # the nested deny applies within the permit: same actor, purpose and classes, plus its label
    assert {(t["kind"], t["value"]) for t in deny} >= {
        ("actor", "Organization/gp1"), ("purpose", "TREAT"), ("class", "Condition"),
        ("label", "http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R"),
    }
    assert rows.rules[1]["by_label"] and not rows.rules[0]["by_label"]


def test_an_unqualified_deny_is_a_refusal_rule():
    refusal = dict(_consent("consent-a-relative"), provision={"type": "deny"})
    rows = consent_rows(refusal)
    assert [(r["permit"], r["by_actor"], r["by_class"]) for r in rows.rules] == [(False, False, False)]


def test_only_active_privacy_consents_decide():
    assert consent_rows(_consent("consent-b-proposed")).rules == []
    research = dict(_consent("consent-a-gp"), scope={"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "research"}]})
    assert consent_rows(research).rules == []


def test_criteria_that_cannot_be_evaluated_never_widen_access():
    base = _consent("consent-a-gp")
    by_code = {"type": "permit", "actor": [{"reference": {"reference": "Organization/gp1"}}],
               "code": [{"coding": [{"system": "http://snomed.info/sct", "code": "35489007"}]}]}
    assert consent_rows(dict(base, provision={"type": "deny", "provision": [by_code]})).rules == []
    deny_by_code = dict(by_code, type="deny")
    rows = consent_rows(dict(base, provision=deny_by_code))
    # the deny applies to the actor without the code limit it cannot check
    assert [(r["permit"], r["by_actor"], r["by_class"]) for r in rows.rules] == [(False, True, False)]


def test_disjoint_criteria_drop_the_provision_and_everything_under_it():
    base = _consent("consent-a-gp")
    provision = {"type": "deny", "provision": [{
        "type": "permit", "class": [{"system": "http://hl7.org/fhir/resource-types", "code": "CarePlan"}],
        "provision": [{"type": "deny", "class": [{"system": "http://hl7.org/fhir/resource-types",
                                                  "code": "Observation"}]}],
    }]}
    rows = consent_rows(dict(base, provision=provision))
    assert [(r["node"], r["permit"]) for r in rows.rules] == [(0, True)]
