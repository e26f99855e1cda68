"""ValueSet expansion and membership over the package's, UK Core's and R4's terminology."""

from __future__ import annotations

import pytest

from server.validation.terminology import ExpansionError, Terminology, default_terminology

CB = "https://fhir.carebridge.example"


def test_a_package_value_set_of_a_whole_code_system_lists_its_codes() -> None:
    streams = default_terminology().expand(f"{CB}/ValueSet/cap-stream")
    assert streams.contains(f"{CB}/CodeSystem/cap-stream", "amh") is True
    assert streams.contains(f"{CB}/CodeSystem/cap-stream", "nope") is False
    assert streams.contains("http://snomed.info/sct", "amh") is False


def test_a_concept_list_admits_only_its_codes() -> None:
    priority = default_terminology().expand(f"{CB}/ValueSet/cap-priority|0.1.0")
    assert priority.contains_code("urgent") is True
    assert priority.contains_code("asap") is False


def test_r4_value_sets_are_held() -> None:
    identifier_types = default_terminology().expand("http://hl7.org/fhir/ValueSet/identifier-type")
    assert identifier_types.contains("http://terminology.hl7.org/CodeSystem/v2-0203", "MR") is True
    assert identifier_types.contains("http://terminology.hl7.org/CodeSystem/v2-0203", "XX-NOT") is False


def test_is_a_filters_on_a_held_hierarchy() -> None:
    relationships = default_terminology().expand("https://fhir.hl7.org.uk/ValueSet/UKCore-PersonRelationshipType")
    role_code = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
    assert relationships.contains(role_code, "MTH") is True
    assert relationships.contains(role_code, "_PersonalRelationshipRoleType") is False  # excluded by the set
    assert relationships.contains(role_code, "ASSIGNED") is False  # a RoleCode outside the hierarchy


def test_a_filter_on_a_system_not_held_leaves_membership_open() -> None:
    reasons = default_terminology().expand("https://fhir.hl7.org.uk/ValueSet/UKCore-ServiceRequestReasonCode")
    assert reasons.contains("http://snomed.info/sct", "35489007") is None
    assert reasons.contains("http://loinc.org", "1234-5") is False


def test_a_whole_system_not_held_admits_its_codes_unchecked() -> None:
    exceptions = default_terminology().expand("https://fhir.hl7.org.uk/ValueSet/UKCore-ConsentException")
    assert exceptions.contains("http://snomed.info/sct", "123") is True
    assert exceptions.contains("http://loinc.org", "123") is False


def test_imports_excludes_and_unknown_value_sets() -> None:
    terminology = Terminology([
        {"resourceType": "CodeSystem", "url": "urn:cs", "content": "complete",
         "concept": [{"code": "a", "concept": [{"code": "a1"}]}, {"code": "b"}]},
        {"resourceType": "ValueSet", "url": "urn:all", "compose": {"include": [{"system": "urn:cs"}],
                                                                    "exclude": [{"system": "urn:cs",
                                                                                 "concept": [{"code": "b"}]}]}},
        {"resourceType": "ValueSet", "url": "urn:imports", "compose": {"include": [{"valueSet": ["urn:all"]}]}},
        {"resourceType": "ValueSet", "url": "urn:broken", "compose": {"include": [{"valueSet": ["urn:missing"]}]}},
        {"resourceType": "ValueSet", "url": "urn:loop", "compose": {"include": [{"valueSet": ["urn:loop"]}]}},
    ])
    imported = terminology.expand("urn:imports")
    assert [imported.contains("urn:cs", c) for c in ("a", "a1", "b")] == [True, True, False]
    for url in ("urn:broken", "urn:loop", "urn:nowhere"):
        with pytest.raises(ExpansionError):
            terminology.expand(url)
    assert terminology.expand("urn:all") is terminology.expand("urn:all|2")  # cached, version ignored
