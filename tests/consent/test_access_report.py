"""``Patient/{id}/$access-report``: the service user, their care team and auditors see who may
see the record and why, and who looked; nobody else learns anything from it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Fhir


def _parts(report: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [p for p in report["parameter"] if p["name"] == name]


def _value(part: dict[str, Any], name: str) -> Any:
    found = next(p for p in part["part"] if p["name"] == name)
    return next(v for k, v in found.items() if k.startswith("value"))


def test_the_service_user_sees_each_consent_as_enforced_and_who_looked(as_caller, module_app):
    as_caller("gp").get("Patient/a")  # an access the report must show
    module_app.state.api.audit.flush()
    r = as_caller("service-user").get("Patient/a/$access-report")
    assert r.status_code == 200, r.text
    report = r.json()
    consents = {_value(c, "reference")["reference"]: c for c in _parts(report, "consent")}
    assert set(consents) == {"Consent/consent-a-gp", "Consent/consent-a-carer", "Consent/consent-a-social",
                             "Consent/consent-a-relative"}
    gp_rules = [r for r in consents["Consent/consent-a-gp"]["part"] if r["name"] == "rule"]
    assert [_value(r, "effect") for r in gp_rules] == ["share", "do not share"]
    assert _value(gp_rules[0], "who") == "Organization/gp1"
    accesses = _parts(report, "access")
    assert any(p.get("valueReference", {}).get("reference") == "Practitioner/gp-patel"
               for a in accesses for p in a["part"])


def test_the_care_team_may_read_the_report(as_caller):
    assert as_caller("custodian").get("Patient/a/$access-report").status_code == 200  # kw-okafor is on team-a


@pytest.mark.parametrize("caller", ["objected-clinician", "gp"])
def test_others_who_see_the_patient_are_refused(as_caller, caller):
    assert as_caller(caller).get("Patient/a/$access-report").status_code == 403


@pytest.mark.parametrize("caller", ["other-gp", "carer", "unwanted-relative"])
def test_callers_who_cannot_see_the_patient_learn_nothing(as_caller, caller):
    api = as_caller(caller)
    hidden = api.get("Patient/a/$access-report")
    missing = api.get("Patient/nobody/$access-report")
    assert hidden.status_code == missing.status_code == 404


def test_a_patient_without_consents_is_told_nothing_is_shared(world: Fhir, module_app):
    token = module_app.state.api.tokens.issue("su", "patient/*.rs", fhir_user="Patient/c")
    report = world.as_(token).get("Patient/c/$access-report").json()
    assert [_value(c, "enforced") for c in _parts(report, "consent")] == ["yes"]  # c's objection
    token_b = module_app.state.api.tokens.issue("su", "patient/*.rs", fhir_user="Patient/b")
    report_b = world.as_(token_b).get("Patient/b/$access-report").json()
    assert _parts(report_b, "sharing")  # only a proposed Consent: nothing shared
