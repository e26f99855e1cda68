"""The demo data has a Consent story for each kind of caller, as the README tells a new
user to try them ("Who sees what"), here as the development tokens of its shortcut; the
same callers through the demo clients and /auth/token are in tests/auth/test_demo_clients.py."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from carebridge.config import Settings
from carebridge.demo import load_demo_data
from server.api.app import create_app
from tests.conftest import BASE, Fhir

#: (caller, token claims, resources they must see, resources hidden from them)
STORIES: list[tuple[str, dict[str, Any], set[str], set[str]]] = [
    ("trust key worker", {"scope": "user/*.rs", "organization": "RT5", "fhir_user": "Practitioner/kw-okafor",
                          "purpose_of_use": "TREAT"},
     {"Patient/sam-taylor", "Patient/priya-shah", "CarePlan/sicp-sam"}, set()),
    ("GP of Sam and Priya", {"scope": "user/*.rs", "organization": "C82001", "fhir_user": "Practitioner/gp-patel",
                             "purpose_of_use": "TREAT"},
     {"Patient/sam-taylor", "CarePlan/sicp-sam", "ServiceRequest/ref-sam-1"},
     {"Patient/priya-shah", "ServiceRequest/ref-priya-1", "Patient/daniel-brooks"}),
    ("Leicester social care", {"scope": "system/*.rs", "organization": "E06000016", "purpose_of_use": "TREAT"},
     {"Patient/jo-wright", "ServiceRequest/ref-jo-1"}, {"Patient/sam-taylor", "Patient/priya-shah"}),
    ("Sam's carer", {"scope": "user/*.rs", "organization": "RT5", "fhir_user": "RelatedPerson/carer-alex-taylor"},
     {"CarePlan/sicp-sam", "Goal/goal-sam-1"}, {"Patient/sam-taylor", "ServiceRequest/ref-sam-1"}),
    ("Priya's relative", {"scope": "user/*.rs", "organization": "RT5", "fhir_user": "RelatedPerson/carer-raj-shah"},
     set(), {"Patient/priya-shah", "ServiceRequest/ref-priya-1"}),
    ("Margaret's GP, in her best interests", {"scope": "user/*.rs", "organization": "C82003",
                                              "fhir_user": "Practitioner/gp-hughes", "purpose_of_use": "TREAT"},
     {"Patient/margaret-evans", "ServiceRequest/ref-margaret-1"}, {"Condition/cond-margaret-memory"}),
    ("Sam himself", {"scope": "patient/*.rs", "fhir_user": "Patient/sam-taylor"},
     {"Patient/sam-taylor", "CarePlan/sicp-sam"}, {"Patient/priya-shah"}),
    ("break-glass", {"scope": "user/*.rs", "organization": "C82002", "fhir_user": "Practitioner/gp-hughes",
                     "purpose_of_use": "BTG", "break_glass_reason": "collapsed in the surgery"},
     {"Patient/priya-shah", "ServiceRequest/ref-priya-1"}, set()),
]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_each_demo_caller_sees_their_share(settings: Settings) -> None:
    load_demo_data(settings)
    app: Any = create_app(settings)
    with TestClient(app, base_url=BASE) as client:
        for name, claims, visible, hidden in STORIES:
            claims = dict(claims)
            scope = claims.pop("scope")
            api = Fhir(client, app.state.api.tokens.issue("demo-viewer", scope, **claims))
            for ref in visible:
                assert api.get(ref).status_code == 200, (name, ref)
            for ref in hidden:
                assert api.get(ref).status_code == 404, (name, ref)
