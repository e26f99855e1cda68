"""The demo data's DIALOG part: the Questionnaire in the store, Sam Taylor's trend, and a
second load that writes nothing."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from carebridge.config import Settings
from carebridge.demo import load_demo_data
from server.api.app import create_app
from tests.conftest import BASE, Fhir
from tests.dialog.dialogdata import URL


def versions(fhir: Fhir, query: str) -> dict[str, str]:
    r = fhir.get(query)
    assert r.status_code == 200, r.text
    return {e["resource"]["id"]: e["resource"]["meta"]["versionId"] for e in r.json().get("entry", [])}


def test_demo_load_stores_the_questionnaire_and_a_trend_idempotently(settings: Settings) -> None:
    first = load_demo_data(settings)
    assert first > 0
    app: Any = create_app(settings)
    with TestClient(app, base_url=BASE) as client:
        fhir = Fhir(client, app.state.api.tokens.issue("demo-test", "system/*.rs"))
        found = fhir.get(f"Questionnaire?url={URL}&version=1").json()
        assert found["total"] == 1
        q = found["entry"][0]["resource"]
        assert q["id"] == "dialog" and len(q["item"]) == 13
        trend = fhir.get("Patient/sam-taylor/$dialog-trend").json()
        sqol = [(e["resource"]["effectiveDateTime"][:10], e["resource"]["valueQuantity"]["value"])
                for e in trend["entry"] if e["resource"]["code"]["coding"][0]["code"] == "sqol"]
        # 25/8, 35/8 and 26/8, rounded half up
        assert sqol == [("2026-05-12", 3.13), ("2026-08-18", 4.38), ("2026-12-01", 3.25)]
        assert trend["total"] == 39
        before = {t: versions(fhir, f"{t}?_count=200") for t in ("Questionnaire", "QuestionnaireResponse",
                                                                 "Observation", "Patient")}
        assert load_demo_data(settings) == 0
        after = {t: versions(fhir, f"{t}?_count=200") for t in before}
        assert after == before
        assert set(before["Questionnaire"].values()) == {"1"}
