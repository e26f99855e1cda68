"""Realistic resources for Leicester, Leicestershire and Rutland, shared by the API, search
and access tests: the trust (ODS RT5), GP practices (C82xxx), practitioners, service users
with NHS numbers in the 999 test range, and the clinical resources around a referral."""

from __future__ import annotations

from typing import Any

from tests.conftest import NHS, nhs_number

ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
SDS_USER = "https://fhir.nhs.uk/Id/sds-user-id"
GMC = "https://fhir.hl7.org.uk/Id/gmc-number"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
REFERRAL_ID = "https://fhir.lpt.nhs.uk/Id/cap-referral"
DIALOG_URL = "https://fhir.lpt.nhs.uk/Questionnaire/dialog"

__all__ = ["NHS", "nhs_number"]


def leicester_address(line: str = "12 Narborough Road", postcode: str = "LE3 0BQ",
                      city: str = "Leicester") -> dict[str, Any]:
    return {"use": "home", "line": [line], "city": city, "district": "Leicestershire",
            "postalCode": postcode, "country": "GB"}


def organization(ods: str = "RT5", name: str = "Leicestershire Partnership NHS Trust", **extra: Any) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Organization",
        "identifier": [{"system": ODS, "value": ods}],
        "active": True,
        "name": name,
        "address": [{"line": ["Riverside House", "Bridge Park Plaza"], "city": "Leicester",
                     "postalCode": "LE4 8PQ", "country": "GB"}],
    }
    res.update(extra)
    return res


def gp_practice(ods: str = "C82001", name: str = "Spinney Hill Medical Centre") -> dict[str, Any]:
    return organization(ods, name, address=[leicester_address("143 St Saviours Road", "LE5 3SL")],
                        type=[{"coding": [{"system": "https://fhir.nhs.uk/CodeSystem/organisation-role",
                                           "code": "76", "display": "GP PRACTICE"}]}])


def practitioner(family: str = "Patel", given: str = "Anita", sds: str = "555123456789",
                 **extra: Any) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Practitioner",
        "identifier": [{"system": SDS_USER, "value": sds}],
        "active": True,
        "name": [{"family": family, "given": [given], "prefix": ["Dr"]}],
        "gender": "female",
    }
    res.update(extra)
    return res


def service_user(n: int, family: str = "Smith", given: str = "Jane", **extra: Any) -> dict[str, Any]:
    """A Patient with the n-th NHS number of the 999 range and a Leicester address."""
    res: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": [{"system": NHS, "value": nhs_number(n)}],
        "name": [{"use": "official", "family": family, "given": [given]}],
        "gender": "female",
        "birthDate": "1984-05-17",
        "address": [leicester_address()],
    }
    res.update(extra)
    return res


def ref(resource: dict[str, Any]) -> dict[str, str]:
    return {"reference": f"{resource['resourceType']}/{resource['id']}"}


def referral(patient_id: str, *, status: str = "active", priority: str = "routine",
             authored: str = "2024-03-14T10:30:00+00:00", number: str | None = None, **extra: Any) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "status": status,
        "intent": "order",
        "priority": priority,
        "category": [{"coding": [{"system": SNOMED, "code": "3457005", "display": "Patient referral"}]}],
        "code": {"coding": [{"system": SNOMED, "code": "306136006",
                             "display": "Referral to liaison psychiatry service"}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "authoredOn": authored,
    }
    if number:
        res["identifier"] = [{"system": REFERRAL_ID, "value": number}]
    res.update(extra)
    return res


def observation(patient_id: str, *, value: float = 5.4, unit: str = "mmol/L", code: str = "15074-8",
                display: str = "Glucose [Moles/volume] in Blood", category: str = "laboratory",
                effective: str = "2024-03-14T09:00:00Z", **extra: Any) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": OBS_CATEGORY, "code": category}]}],
        "code": {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": effective,
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
    }
    res.update(extra)
    return res


def condition(patient_id: str, *, code: str = "35489007", display: str = "Depressive disorder",
              onset: str = "2023-11-02", **extra: Any) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Condition",
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                       "code": "active"}]},
        "code": {"coding": [{"system": SNOMED, "code": code, "display": display}], "text": display},
        "subject": {"reference": f"Patient/{patient_id}"},
        "onsetDateTime": onset,
    }
    res.update(extra)
    return res


def care_plan(patient_id: str, *, status: str = "active", start: str = "2024-01-08",
              end: str = "2024-07-08", **extra: Any) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "CarePlan",
        "status": status,
        "intent": "plan",
        "title": "Single Integrated Care Plan",
        "subject": {"reference": f"Patient/{patient_id}"},
        "period": {"start": start, "end": end},
    }
    res.update(extra)
    return res


def goal(patient_id: str, *, description: str = "Return to part-time work", **extra: Any) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Goal",
        "lifecycleStatus": "active",
        "description": {"text": description},
        "subject": {"reference": f"Patient/{patient_id}"},
        "startDate": "2024-01-08",
    }
    res.update(extra)
    return res


def consent(patient_id: str, **extra: Any) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                              "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": LOINC, "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient_id}"},
        "dateTime": "2024-01-08T11:00:00Z",
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
        "provision": {"type": "permit", "period": {"start": "2024-01-08"}},
    }
    res.update(extra)
    return res


def dialog_questionnaire(url: str = DIALOG_URL, version: str = "1.0.0", **extra: Any) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Questionnaire",
        "url": url,
        "version": version,
        "name": "DIALOG",
        "title": "DIALOG patient-reported outcome",
        "status": "active",
        "item": [{"linkId": "1", "text": "How satisfied are you with your mental health?", "type": "choice"}],
    }
    res.update(extra)
    return res


def questionnaire_response(patient_id: str, questionnaire: str = DIALOG_URL, **extra: Any) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": questionnaire,
        "status": "completed",
        "subject": {"reference": f"Patient/{patient_id}"},
        "authored": "2024-02-01T14:00:00Z",
        "item": [{"linkId": "1", "answer": [{"valueInteger": 4}]}],
    }
    res.update(extra)
    return res


def task(patient_id: str, *, status: str = "requested", **extra: Any) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Task",
        "status": status,
        "intent": "order",
        "for": {"reference": f"Patient/{patient_id}"},
        "authoredOn": "2024-03-14T11:00:00Z",
        "description": "Triage the referral within one working day",
    }
    res.update(extra)
    return res


def encounter(patient_id: str, *, start: str = "2024-03-15T09:00:00Z", end: str = "2024-03-15T10:00:00Z",
              **extra: Any) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": f"Patient/{patient_id}"},
        "period": {"start": start, "end": end},
    }
    res.update(extra)
    return res


def episode_of_care(patient_id: str, org_id: str, **extra: Any) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "EpisodeOfCare",
        "status": "active",
        "patient": {"reference": f"Patient/{patient_id}"},
        "managingOrganization": {"reference": f"Organization/{org_id}"},
        "period": {"start": "2024-03-15"},
    }
    res.update(extra)
    return res


def document(patient_id: str, *, description: str = "Crisis and safety plan", **extra: Any) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "status": "current",
        "subject": {"reference": f"Patient/{patient_id}"},
        "date": "2024-03-16T12:00:00Z",
        "description": description,
        "content": [{"attachment": {"contentType": "application/pdf", "url": "https://docs.lpt.nhs.uk/1.pdf"}}],
    }
    res.update(extra)
    return res


def provenance(target: str, agent: str, **extra: Any) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Provenance",
        "target": [{"reference": target}],
        "recorded": "2024-03-14T10:31:00Z",
        "agent": [{"who": {"reference": agent}}],
    }
    res.update(extra)
    return res


def audit_event(patient_id: str, **extra: Any) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest"},
        "action": "R",
        "recorded": "2024-03-14T10:32:00Z",
        "outcome": "0",
        "agent": [{"who": {"display": "CAP triage"}, "requestor": True, "name": "Triage worklist"}],
        "source": {"observer": {"display": "carebridge"}},
        "entity": [{"what": {"reference": f"Patient/{patient_id}"}}],
    }
    res.update(extra)
    return res


def related_person(patient_id: str, **extra: Any) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "RelatedPerson",
        "patient": {"reference": f"Patient/{patient_id}"},
        "relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
                                      "code": "MTH"}]}],
        "name": [{"family": "Smith", "given": ["Margaret"]}],
        "address": [leicester_address()],
    }
    res.update(extra)
    return res


def practitioner_role(practitioner_id: str, org_id: str, **extra: Any) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "PractitionerRole",
        "practitioner": {"reference": f"Practitioner/{practitioner_id}"},
        "organization": {"reference": f"Organization/{org_id}"},
        "code": [{"text": "Community psychiatric nurse"}],
        "active": True,
    }
    res.update(extra)
    return res


def care_team(patient_id: str, practitioner_id: str, **extra: Any) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "CareTeam",
        "status": "active",
        "name": "City East community mental health team",
        "subject": {"reference": f"Patient/{patient_id}"},
        "participant": [{"member": {"reference": f"Practitioner/{practitioner_id}"}}],
    }
    res.update(extra)
    return res


def ids(bundle: dict[str, Any], mode: str | None = "match") -> list[str]:
    """The ids of a searchset's entries (of one search mode; None for all)."""
    return [e["resource"]["id"] for e in bundle.get("entry", [])
            if "resource" in e and (mode is None or e.get("search", {}).get("mode") == mode)]


def refs(bundle: dict[str, Any], mode: str | None = None) -> set[str]:
    return {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle.get("entry", [])
            if "resource" in e and (mode is None or e.get("search", {}).get("mode") == mode)}


def link(bundle: dict[str, Any], relation: str) -> str | None:
    return next((x["url"] for x in bundle.get("link", []) if x["relation"] == relation), None)
