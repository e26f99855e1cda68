"""Reference, quantity (number semantics), uri and composite search, chains, reverse chains
and _id, over HTTP on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from tests.api import ukdata as uk
from tests.api.searchkit import hits, load, search
from tests.conftest import BASE, NHS, nhs_number

FHIR_BASE = f"{BASE}/fhir"


@pytest.fixture(scope="module")
def data(module_fhir):
    def sr3(m):
        res = uk.referral(m["p3"]["id"], status="completed")
        res["subject"]["identifier"] = {"system": NHS, "value": nhs_number(3)}
        return res

    return load(module_fhir, [
        ("p1", uk.service_user(1)),
        ("p2", uk.service_user(2, family="Nunez")),
        ("p3", uk.service_user(3, family="Smithson")),
        ("pr1", uk.practitioner()),
        ("sr1", lambda m: uk.referral(m["p1"]["id"], requester=uk.ref(m["pr1"]))),
        ("sr2", lambda m: uk.referral("x", subject={"reference": f"{FHIR_BASE}/Patient/{m['p2']['id']}"},
                                      priority="urgent")),
        ("sr3", sr3),
        ("o1", lambda m: uk.observation(m["p1"]["id"], value=5.4)),
        ("o2", lambda m: uk.observation(m["p2"]["id"], code="8867-4", value=72, unit="/min")),
        ("o3", lambda m: uk.observation(m["p2"]["id"], value=7.0)),
        ("q1", uk.dialog_questionnaire()),
        ("q2", uk.dialog_questionnaire(url=uk.DIALOG_URL + "/v2", version="2.0.0")),
    ])


def _cases(m):
    p1, p2, p3, pr1 = (m[k]["id"] for k in ("p1", "p2", "p3", "pr1"))
    return [
        (f"ServiceRequest?subject=Patient/{p1}", {"sr1"}),
        (f"ServiceRequest?subject={p1}", {"sr1"}),
        (f"ServiceRequest?subject:Patient={p1}", {"sr1"}),
        (f"ServiceRequest?subject:Group={p1}", set()),
        (f"ServiceRequest?subject={FHIR_BASE}/Patient/{p1}", {"sr1"}),
        (f"ServiceRequest?subject=Patient/{p2}", {"sr2"}),  # stored as an absolute URL under the base
        (f"ServiceRequest?patient={p2}", {"sr2"}),
        (f"ServiceRequest?subject=Patient/{p1},Patient/{p3}", {"sr1", "sr3"}),
        (f"ServiceRequest?requester=Practitioner/{pr1}", {"sr1"}),
        ("ServiceRequest?requester:missing=true", {"sr2", "sr3"}),
        (f"ServiceRequest?subject:identifier={NHS}|{nhs_number(3)}", {"sr3"}),
        (f"ServiceRequest?subject:identifier={NHS}|{nhs_number(1)}", set()),
        ("ServiceRequest?subject:Patient.name=smith", {"sr1", "sr3"}),
        ("ServiceRequest?subject.family=nunez", {"sr2"}),
        (f"ServiceRequest?subject:Patient.identifier={NHS}|{nhs_number(1)}", {"sr1"}),
        ("ServiceRequest?requester:Practitioner.name=patel", {"sr1"}),
        ("ServiceRequest?subject:Patient.name=smith&status=completed", {"sr3"}),
        ("Patient?_has:ServiceRequest:subject:status=completed", {"p3"}),
        ("Patient?_has:ServiceRequest:subject:priority=urgent", {"p2"}),
        ("Patient?_has:Observation:patient:code=15074-8", {"p1", "p2"}),
        ("Patient?_has:Observation:patient:code=8867-4&family=smith", set()),
        (f"Patient?_id={p1}", {"p1"}),
        (f"Patient?_id={p1},{p3}", {"p1", "p3"}),
        ("Patient?_id=unknown", set()),
        ("Observation?value-quantity=5.4", {"o1"}),
        (f"Observation?value-quantity=5.4|{uk.UCUM}|mmol/L", {"o1"}),
        ("Observation?value-quantity=5.4||mmol/L", {"o1"}),
        ("Observation?value-quantity=5.4||/min", set()),
        ("Observation?value-quantity=5", {"o1"}),  # 5 means [4.5, 5.5)
        ("Observation?value-quantity=7", {"o3"}),
        ("Observation?value-quantity=7.0", {"o3"}),
        ("Observation?value-quantity=7.00", {"o3"}),
        ("Observation?value-quantity=gt6", {"o2", "o3"}),
        ("Observation?value-quantity=lt6", {"o1"}),
        ("Observation?value-quantity=ge72||/min", {"o2"}),
        (f"Observation?value-quantity=le7.0|{uk.UCUM}|mmol/L", {"o1", "o3"}),
        ("Observation?value-quantity=ne5.4", {"o2", "o3"}),
        ("Observation?value-quantity=ap5", {"o1"}),
        ("Observation?value-quantity=7.2e1", {"o2"}),
        (f"Questionnaire?url={uk.DIALOG_URL}", {"q1"}),
        ("Questionnaire?url:below=https://fhir.lpt.nhs.uk/Questionnaire", {"q1", "q2"}),
        (f"Questionnaire?url:above={uk.DIALOG_URL}/extra", {"q1"}),
        ("Questionnaire?url=https://fhir.lpt.nhs.uk/Questionnaire", set()),
        ("Questionnaire?url:below=HTTPS://FHIR.LPT.NHS.UK/Questionnaire", set()),
        ("Questionnaire?url:below=https://fhir.lpt.nhs.uk/Questionnaire/dia", set()),
        (f"Questionnaire?url:below={uk.DIALOG_URL}", {"q1", "q2"}),
        (f"Questionnaire?url:above={uk.DIALOG_URL}ue", set()),
        (f"Questionnaire?url:above={uk.DIALOG_URL}/v2/x", {"q1", "q2"}),
    ]


CASES = range(48)


@pytest.mark.parametrize("n", CASES)
def test_reference_quantity_uri(module_fhir, data, n):
    cases = _cases(data)
    assert len(cases) == len(CASES)
    query, expected = cases[n]
    assert hits(module_fhir, data, query) == expected, query


def test_composite_is_refused_with_400(module_fhir, data):
    body = search(module_fhir, f"Observation?code-value-quantity={uk.LOINC}|15074-8$5.4", status=400)
    assert "composite" in body["issue"][0]["diagnostics"]


def test_chain_on_a_non_reference_is_400(module_fhir, data):
    search(module_fhir, "ServiceRequest?status.name=x", status=400)


def test_has_with_unknown_type_is_400(module_fhir, data):
    search(module_fhir, "Patient?_has:Nothing:subject:status=x", status=400)
