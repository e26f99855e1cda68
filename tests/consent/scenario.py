"""One small world of service users, the people around them and their Consents.

Every leak test runs against this store, as each kind of caller, and compares what the
API shows with what the consent model says that caller may see (``EXPECTED``).
"""

from __future__ import annotations

from typing import Any

ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
NHS = "https://fhir.nhs.uk/Id/nhs-number"
CUSTODIAN = "https://fhir.carebridge.example/CodeSystem/custodian"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
PURPOSE = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
TYPES = "http://hl7.org/fhir/resource-types"
SNOMED = "http://snomed.info/sct"


def _org(id: str, ods: str, name: str) -> dict[str, Any]:
    return {"resourceType": "Organization", "id": id, "name": name, "identifier": [{"system": ODS, "value": ods}]}


def _practitioner(id: str, family: str) -> dict[str, Any]:
    return {"resourceType": "Practitioner", "id": id, "name": [{"family": family}]}


def _patient(id: str, nhs: str, family: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": id, "identifier": [{"system": NHS, "value": nhs}],
            "name": [{"family": family, "given": ["Test"]}]}


def _referral(id: str, patient: str) -> dict[str, Any]:
    return {"resourceType": "ServiceRequest", "id": id, "status": "active", "intent": "order",
            "subject": {"reference": f"Patient/{patient}"}}


def _plan(id: str, patient: str) -> dict[str, Any]:
    return {"resourceType": "CarePlan", "id": id, "status": "active", "intent": "plan",
            "subject": {"reference": f"Patient/{patient}"}}


def _condition(id: str, patient: str, code: str, security: list[dict[str, str]] | None = None) -> dict[str, Any]:
    res: dict[str, Any] = {"resourceType": "Condition", "id": id, "subject": {"reference": f"Patient/{patient}"},
                           "code": {"coding": [{"system": SNOMED, "code": code}]}}
    if security:
        res["meta"] = {"security": security}
    return res


def _observation(id: str, patient: str, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    res: dict[str, Any] = {"resourceType": "Observation", "id": id, "status": "final",
                           "code": {"text": "note"}, "subject": {"reference": f"Patient/{patient}"}}
    if meta:
        res["meta"] = meta
    return res


def _consent(id: str, patient: str, provision: dict[str, Any], status: str = "active") -> dict[str, Any]:
    return {
        "resourceType": "Consent", "id": id, "status": status,
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                              "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient}"},
        # R4's ppc-1: a Consent names a policy or policyRule
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
        "provision": provision,
    }


def _actor(ref: str) -> dict[str, Any]:
    return {"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                 "code": "IRCP"}]}, "reference": {"reference": ref}}


def _classes(*types: str) -> list[dict[str, str]]:
    return [{"system": TYPES, "code": t} for t in types]


RESTRICTED = [{"system": CONFIDENTIALITY, "code": "R"}]
SOCIAL = {"tag": [{"system": CUSTODIAN, "code": "E06000016"}], "security": [{"system": ACT_CODE, "code": "SOC"}]}
CARER_CONFIDENTIAL = {"security": [{"system": ACT_CODE, "code": "NOPAT"}]}

RESOURCES: list[dict[str, Any]] = [
    _org("rt5", "RT5", "Leicestershire Partnership NHS Trust"),
    _org("gp1", "C82001", "Demo Road Medical Centre"),
    _org("gp2", "C82002", "Charnwood Demo Surgery"),
    _org("la", "E06000016", "Leicester City Council"),
    _practitioner("gp-patel", "Patel"),
    _practitioner("gp-hughes", "Hughes"),
    _practitioner("kw-okafor", "Okafor"),
    _practitioner("dr-no", "Objected"),
    {"resourceType": "PractitionerRole", "id": "gp-patel-role", "practitioner": {"reference": "Practitioner/gp-patel"},
     "organization": {"reference": "Organization/gp1"}},
    _patient("a", "9990000018", "Able"),
    _patient("b", "9990000026", "Baker"),
    _patient("c", "9990000034", "Carter"),
    {"resourceType": "RelatedPerson", "id": "carer-a", "patient": {"reference": "Patient/a"},
     "name": [{"family": "Able", "given": ["Carer"]}]},
    {"resourceType": "RelatedPerson", "id": "relative-a", "patient": {"reference": "Patient/a"},
     "name": [{"family": "Able", "given": ["Unwanted"]}]},
    {"resourceType": "CareTeam", "id": "team-a", "status": "active", "subject": {"reference": "Patient/a"},
     "participant": [{"member": {"reference": "Practitioner/kw-okafor"}}]},
    _referral("sr-a", "a"),
    _plan("cp-a", "a"),
    _condition("cond-a", "a", "35489007"),
    _condition("cond-a-restricted", "a", "69322001", RESTRICTED),
    _observation("obs-a-carer-note", "a", CARER_CONFIDENTIAL),
    _observation("obs-a-social", "a", SOCIAL),
    _referral("sr-b", "b"),
    _plan("cp-b", "b"),
    _observation("obs-b-social", "b", SOCIAL),
    _referral("sr-c", "c"),
    # a: shares with the GP practice for treatment, except restricted information
    _consent("consent-a-gp", "a", {"type": "deny", "provision": [{
        "type": "permit", "actor": [_actor("Organization/gp1")],
        "purpose": [{"system": PURPOSE, "code": "TREAT"}],
        "class": _classes("Patient", "ServiceRequest", "CarePlan", "Condition", "Observation"),
        "provision": [{"type": "deny", "securityLabel": RESTRICTED}],
    }]}),
    # a: the carer may see the care plan
    _consent("consent-a-carer", "a", {"type": "deny", "provision": [{
        "type": "permit", "actor": [_actor("RelatedPerson/carer-a")], "class": _classes("CarePlan"),
    }]}),
    # a: the local authority may see the referral; the trust may see the social care record
    _consent("consent-a-social", "a", {"type": "deny", "provision": [
        {"type": "permit", "actor": [_actor("Organization/la")], "class": _classes("ServiceRequest")},
        {"type": "permit", "actor": [_actor("Organization/rt5")], "class": _classes("Observation")},
    ]}),
    # a: this relative is not to be involved
    _consent("consent-a-relative", "a", {"type": "deny", "actor": [_actor("RelatedPerson/relative-a")]}),
    # b: only proposed, so it decides nothing
    _consent("consent-b-proposed", "b", {"type": "permit", "actor": [_actor("Organization/gp1")]},
             status="proposed"),
    # c: objects to one clinician of the trust
    _consent("consent-c-objection", "c", {"type": "deny", "actor": [_actor("Practitioner/dr-no")]}),
]

DIRECTORY = {"Organization/rt5", "Organization/gp1", "Organization/gp2", "Organization/la",
             "Practitioner/gp-patel", "Practitioner/gp-hughes", "Practitioner/kw-okafor", "Practitioner/dr-no",
             "PractitionerRole/gp-patel-role"}
ALL = {f"{r['resourceType']}/{r['id']}" for r in RESOURCES}
SOCIAL_CARE = {"Observation/obs-a-social", "Observation/obs-b-social"}

#: who is asking: token claims (scope, organisation, user, purpose, reason)
CALLERS: dict[str, dict[str, Any]] = {
    "custodian": {"scope": "user/*.cruds", "organization": "RT5", "fhir_user": "Practitioner/kw-okafor",
                  "purpose_of_use": "TREAT"},
    "objected-clinician": {"scope": "user/*.cruds", "organization": "RT5", "fhir_user": "Practitioner/dr-no",
                           "purpose_of_use": "TREAT"},
    "gp": {"scope": "user/*.cruds", "organization": "C82001", "fhir_user": "Practitioner/gp-patel",
           "purpose_of_use": "TREAT"},
    "other-gp": {"scope": "user/*.cruds", "organization": "C82002", "fhir_user": "Practitioner/gp-hughes",
                 "purpose_of_use": "TREAT"},
    "other-trust": {"scope": "user/*.cruds", "organization": "RWE", "fhir_user": "Practitioner/elsewhere",
                    "purpose_of_use": "TREAT"},
    "social-care": {"scope": "system/*.cruds", "organization": "E06000016", "purpose_of_use": "TREAT"},
    # the carer portal is run by the trust, but a carer does not inherit the trust's access
    "carer": {"scope": "user/*.cruds", "organization": "RT5", "fhir_user": "RelatedPerson/carer-a"},
    "unwanted-relative": {"scope": "user/*.cruds", "organization": "RT5", "fhir_user": "RelatedPerson/relative-a"},
    "service-user": {"scope": "patient/*.rs", "fhir_user": "Patient/a"},
    "break-glass": {"scope": "user/*.cruds", "organization": "C82002", "fhir_user": "Practitioner/gp-hughes",
                    "purpose_of_use": "BTG", "break_glass_reason": "unconscious in the emergency department"},
}

_health_a = {"Patient/a", "RelatedPerson/carer-a", "RelatedPerson/relative-a", "CareTeam/team-a", "ServiceRequest/sr-a",
             "CarePlan/cp-a", "Condition/cond-a", "Condition/cond-a-restricted", "Observation/obs-a-carer-note",
             "Consent/consent-a-gp", "Consent/consent-a-carer", "Consent/consent-a-social",
             "Consent/consent-a-relative"}
_health_b = {"Patient/b", "ServiceRequest/sr-b", "CarePlan/cp-b", "Consent/consent-b-proposed"}
_health_c = {"Patient/c", "ServiceRequest/sr-c", "Consent/consent-c-objection"}

#: each service user's compartment
COMPARTMENT = {"a": _health_a | {"Observation/obs-a-social"}, "b": _health_b | {"Observation/obs-b-social"},
               "c": set(_health_c)}

#: what each caller may see of the store
EXPECTED: dict[str, set[str]] = {
    "custodian": DIRECTORY | _health_a | _health_b | _health_c | {"Observation/obs-a-social"},
    "objected-clinician": DIRECTORY | _health_a | _health_b | {"Observation/obs-a-social"},
    # the GP practice's Consent covers Observations, so the social care note is shared too
    "gp": DIRECTORY | {"Patient/a", "ServiceRequest/sr-a", "CarePlan/cp-a", "Condition/cond-a",
                       "Observation/obs-a-carer-note", "Observation/obs-a-social"},
    "other-gp": set(DIRECTORY),
    "other-trust": set(DIRECTORY),
    "social-care": DIRECTORY | SOCIAL_CARE | {"ServiceRequest/sr-a"},
    "carer": DIRECTORY | {"CarePlan/cp-a"},
    "unwanted-relative": set(DIRECTORY),
    "service-user": (_health_a | {"Observation/obs-a-social"}) - {"Observation/obs-a-carer-note"},
    "break-glass": set(ALL),
}
