"""Profile validation: the package's examples pass their profiles, and one hand-made
invalid case per rule fails with the right severity and location."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from functools import cache
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carebridge import paths
from server.validation.profile import Profiles, default_profiles
from server.validation.resource import ResourceValidator
from server.validation.snapshot import Generator, known_definitions
from tests.mutations import JSON_VALUES, replace_one

JSON = dict[str, Any]
CB = "https://fhir.carebridge.example"
EXAMPLES = paths.PROFILES / "carebridge" / "example"


@cache
def _validator() -> ResourceValidator:
    return ResourceValidator()


def example(name: str) -> JSON:
    found = sorted(EXAMPLES.glob(f"*-example-{name}.json"))
    assert len(found) == 1, name
    return json.loads(found[0].read_text())


def issues(res: JSON, profiles: list[str] | None = None) -> list[JSON]:
    return _validator().issues(res, profiles)


def located(res: JSON, severity: str = "error") -> set[str]:
    return {i["expression"][0] for i in issues(res) if i["severity"] == severity}


def errors(res: JSON) -> list[JSON]:
    return [i for i in issues(res) if i["severity"] in ("error", "fatal")]


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.stem)
def test_package_examples_pass_their_profiles(path: Any) -> None:
    res = json.loads(path.read_text())
    claimed = res["meta"]["profile"]
    assert claimed and all(default_profiles().get(url) is not None for url in claimed)
    assert errors(res) == []


def _set_carer_code(res: JSON) -> None:
    res["relationship"][0]["coding"][0]["code"] = "not-a-carer-role"


#: per example, a change that only its profile forbids, and where the error is reported
PROFILE_ONLY: dict[str, tuple[Callable[[JSON], Any], str]] = {
    "jane": (lambda r: r["identifier"][0].pop("extension"), "Patient.identifier[0].extension"),
    "cap-referral": (lambda r: r.pop("requester"), "ServiceRequest.requester"),
    "sicp": (lambda r: r.pop("careTeam"), "CarePlan.careTeam"),
    "carer-sharing": (lambda r: r.pop("dateTime"), "Consent.dateTime"),
    "carer": (_set_carer_code, "RelatedPerson.relationship[0]"),
    "dialog": (lambda r: r.pop("authored"), "QuestionnaireResponse.authored"),
}


@pytest.mark.parametrize("name", sorted(PROFILE_ONLY))
def test_package_examples_are_really_checked_against_their_profile(name: str) -> None:
    """A change only the profile forbids fails the example, and passes once the claim is
    dropped: profile validation did run on it (a pass above is not an empty check)."""
    change, where = PROFILE_ONLY[name]
    res = example(name)
    change(res)
    assert where in located(res)
    del res["meta"]
    assert errors(res) == []


# -- one invalid case per rule ----------------------------------------------------------------
Change = Callable[[JSON], None]


def _without(key: str) -> Change:
    return lambda res: res.pop(key)


def _second_performer(res: JSON) -> None:
    res["performer"].append({"reference": "Organization/other"})


def _second_nhs_number(res: JSON) -> None:
    res["identifier"].append(copy.deepcopy(res["identifier"][0]))


def _no_verification_status(res: JSON) -> None:
    del res["identifier"][0]["extension"]


def _research_scope(res: JSON) -> None:
    res["scope"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "research"}]}


def _category_outside(res: JSON) -> None:
    res["category"] = [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}]


def _bad_nhs_number(res: JSON) -> None:
    res["identifier"][0]["value"] = "9434765918"


def _period_backwards(res: JSON) -> None:
    res["name"][0]["period"] = {"start": "2020-01-02", "end": "2020-01-01"}


def _triage_due_string(res: JSON) -> None:
    res["extension"][0] = {"url": f"{CB}/StructureDefinition/triage-due", "valueString": "tomorrow"}


def _subject_group(res: JSON) -> None:
    res["subject"] = {"reference": "Group/example"}


def _stream_code_unknown(res: JSON) -> None:
    res["category"][0]["coding"][0]["code"] = "not-a-stream"


def _gp_without_ods(res: JSON) -> None:
    res["generalPractitioner"][0]["identifier"]["system"] = "https://example.org/practices"


def _two_triage_outcomes(res: JSON) -> None:
    coding = {"system": f"{CB}/CodeSystem/triage-outcome", "code": "stream-for-assessment"}
    outcome = {"url": f"{CB}/StructureDefinition/triage-outcome", "valueCodeableConcept": {"coding": [coding]}}
    res["extension"] += [outcome, copy.deepcopy(outcome)]


CASES: list[tuple[str, str, Change, str, str, str]] = [
    # (rule, example, change, severity, code, location)
    ("min", "cap-referral", _without("requester"), "error", "required", "ServiceRequest.requester"),
    ("max", "cap-referral", _second_performer, "error", "structure", "ServiceRequest.performer[1]"),
    ("fixed", "cap-referral", lambda r: r.update(intent="plan"), "error", "value", "ServiceRequest.intent"),
    ("fixed, nested in a reference", "jane", _gp_without_ods, "error", "value",
     "Patient.generalPractitioner[0].identifier.system"),
    ("pattern", "carer-sharing", _research_scope, "error", "value", "Consent.scope"),
    ("slice max", "jane", _second_nhs_number, "error", "structure", "Patient.identifier[1]"),
    ("slice min, inside a slice", "jane", _no_verification_status, "error", "required",
     "Patient.identifier[0].extension"),
    ("extension slice max", "cap-referral", _two_triage_outcomes, "error", "structure", "ServiceRequest.extension[2]"),
    ("required binding", "cap-referral", lambda r: r.update(priority="asap"), "error", "code-invalid",
     "ServiceRequest.priority"),
    ("required binding of a pattern slice", "cap-referral", _stream_code_unknown, "error", "code-invalid",
     "ServiceRequest.category[0]"),
    ("extensible binding", "carer-sharing", _category_outside, "warning", "code-invalid", "Consent.category[0]"),
    ("invariant error (profile)", "jane", _bad_nhs_number, "error", "invariant", "Patient.identifier[0]"),
    ("invariant error (R4 per-1)", "jane", _period_backwards, "error", "invariant", "Patient.name[0].period"),
    ("extension value type", "cap-referral", _triage_due_string, "error", "structure",
     "ServiceRequest.extension[0].valueString"),
    ("reference target", "cap-referral", _subject_group, "error", "structure", "ServiceRequest.subject"),
    ("max 0", "cap-referral", lambda r: r["extension"].__setitem__(0, {
        "url": f"{CB}/StructureDefinition/triage-due", "extension": [{"url": "x", "valueString": "y"}]}),
     "error", "structure", "ServiceRequest.extension[0].extension[0]"),
]


@pytest.mark.parametrize(("rule", "name", "change", "severity", "code", "where"), CASES, ids=[c[0] for c in CASES])
def test_each_rule_reports_its_issue(rule: str, name: str, change: Change, severity: str, code: str,
                                     where: str) -> None:
    res = example(name)
    assert not [i for i in issues(res) if i["expression"][0] == where and i["severity"] == severity]
    change(res)
    found = [i for i in issues(res) if i["expression"][0] == where and i["severity"] == severity]
    assert found, issues(res)
    assert code in {i["code"] for i in found}, found
    if severity == "warning":
        assert errors(res) == []


def test_invariant_warning_does_not_block() -> None:
    res = example("jane")
    assert "text" not in res
    warned = [i for i in issues(res) if i["severity"] == "warning"]
    assert [(i["code"], i["expression"][0], i["diagnostics"][:5]) for i in warned] == [
        ("invariant", "Patient", "dom-6")]
    _validator().validate(res)  # no exception: warnings never reject


def test_unknown_claimed_profile_is_a_warning() -> None:
    res = example("jane")
    res["meta"]["profile"].append("https://example.org/StructureDefinition/unheard-of")
    warned = [i for i in issues(res) if i["code"] == "not-supported"]
    assert [(i["severity"], i["expression"][0]) for i in warned] == [("warning", "Patient.meta.profile")]
    assert errors(res) == []


def test_unknown_requested_profile_is_an_error() -> None:
    res = example("jane")
    found = [i for i in issues(res, ["https://example.org/StructureDefinition/unheard-of"]) if i["severity"] == "error"]
    assert [i["code"] for i in found] == ["not-supported"]


def test_requested_profile_applies_without_a_claim() -> None:
    res = example("cap-referral")
    del res["meta"]
    del res["requester"]
    assert errors(res) == []
    found = issues(res, [f"{CB}/StructureDefinition/cap-referral"])
    assert "ServiceRequest.requester" in {i["expression"][0] for i in found if i["severity"] == "error"}


def test_profile_of_another_type_is_an_error() -> None:
    res = example("jane")
    found = issues(res, [f"{CB}/StructureDefinition/cap-referral"])
    assert [i["code"] for i in found if i["severity"] == "error"] == ["invalid"]


def test_bundle_entries_are_validated_and_located() -> None:
    referral = example("cap-referral")
    del referral["requester"]
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"resource": example("jane")}, {"resource": referral}]}
    assert "Bundle.entry[1].resource.requester" in located(bundle)
    assert "Bundle.entry[1].resource" in located(bundle, "warning")  # dom-6 of the entry


def test_a_required_profile_applies_without_a_claim(monkeypatch: pytest.MonkeyPatch) -> None:
    from server.validation import policy

    referral = example("cap-referral")
    del referral["meta"]
    del referral["requester"]
    assert errors(referral) == []
    rule = (f"{CB}/StructureDefinition/cap-referral", lambda res: res.get("status") == "active")
    monkeypatch.setattr(policy, "REQUIRED_PROFILES", {"ServiceRequest": (rule,)})
    assert "ServiceRequest.requester" in located(referral)
    referral["status"] = "draft"
    assert errors(referral) == []


def test_dialog_responses_are_held_to_the_profile_when_they_claim_it() -> None:
    """DIALOG's own fit check (server/dialog) decides for unclaimed responses: an in-progress
    one may be partial."""
    res = example("dialog")
    res["status"] = "in-progress"
    res["item"] = res["item"][:3]
    assert "QuestionnaireResponse.item" in located(res)
    del res["meta"]
    assert errors(res) == []


# -- closed slicing: a test profile over carebridge-patient -----------------------------------
def _closed_profile() -> Profiles:
    sd: JSON = {
        "resourceType": "StructureDefinition", "url": "https://example.org/StructureDefinition/nhs-only",
        "name": "NhsNumberOnly", "status": "draft", "kind": "resource", "abstract": False, "type": "Patient",
        "derivation": "constraint", "baseDefinition": f"{CB}/StructureDefinition/carebridge-patient",
        "differential": {"element": [
            {"id": "Patient.identifier", "path": "Patient.identifier",
             "slicing": {"discriminator": [{"type": "value", "path": "system"}], "rules": "closed"}},
        ]},
    }
    definitions = {**known_definitions(), sd["url"]: sd}
    sd["snapshot"] = {"element": Generator(definitions.get).generate(sd)}
    return Profiles(definitions)


def test_closed_slicing_rejects_items_outside_every_slice() -> None:
    profiles = _closed_profile()
    compiled = profiles.get("https://example.org/StructureDefinition/nhs-only")
    assert compiled is not None
    res = example("jane")
    assert profiles.validate(compiled, res) == []
    res["identifier"].append({"system": "https://example.org/mrn", "value": "123"})
    found = profiles.validate(compiled, res)
    assert [(f.severity, f.code, f.expression) for f in found] == [("error", "structure", "Patient.identifier[1]")]
    # the open slicing of the profile it derives from accepts the same identifier
    base = default_profiles().get(f"{CB}/StructureDefinition/carebridge-patient")
    assert base is not None and default_profiles().validate(base, res) == []


@pytest.mark.parametrize("name", ["jane", "cap-referral", "sicp", "carer-sharing", "carer", "dialog"])
def test_the_examples_meet_the_uk_core_profiles_too(name: str) -> None:
    """UK Core publishes differentials only: their snapshots are generated here on first use."""
    res = example(name)
    compiled = default_profiles().get(str(default_profiles().definitions[res["meta"]["profile"][0]]["baseDefinition"]))
    assert compiled is not None and compiled.url.startswith("https://fhir.hl7.org.uk/StructureDefinition/UKCore-")
    res["meta"]["profile"] = [compiled.url]
    assert errors(res) == []


def test_profiles_are_compiled_once() -> None:
    url = f"{CB}/StructureDefinition/cap-referral"
    assert default_profiles().get(url) is default_profiles().get(url)
    assert default_profiles().get(url + "|0.1.0") is default_profiles().get(url)


def test_validation_does_not_change_the_resource() -> None:
    for name in ("jane", "cap-referral", "sicp", "carer-sharing", "carer", "dialog"):
        res = example(name)
        before = copy.deepcopy(res)
        issues(res)
        assert res == before


# -- nothing a client sends makes the validator fail ------------------------------------------
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(["jane", "cap-referral", "sicp", "carer-sharing", "carer", "dialog"]),
       pick=st.integers(0, 10_000), replacement=JSON_VALUES)
def test_any_one_value_replaced_still_gives_an_outcome(name: str, pick: int, replacement: Any) -> None:
    res = example(name)
    assert replace_one(res, pick, replacement)
    found = _validator().issues(res)
    assert all(i["severity"] in ("error", "warning", "information") and i["expression"] for i in found)
    # the profile walk itself, even on what the structure checker would have stopped
    compiled = default_profiles().get(example(name)["meta"]["profile"][0])
    assert compiled is not None
    from server.validation.invariants import core_invariants

    core_invariants().check(res)  # the invariant walk too: findings, never an exception
    roots = (compiled.type, str(res.get("resourceType")))
    assert all(f.expression.startswith(roots) for f in default_profiles().validate(compiled, res))
