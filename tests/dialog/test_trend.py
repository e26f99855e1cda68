"""``Patient/{id}/$dialog-trend`` through real HTTP (the ASGI app), on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.conftest import Fhir
from tests.dialog.dialogdata import ITEM_CODES, codes, response

#: three responses of Patient/p1, written out of date order; scores worked by hand
SERIES = [
    ("qr-b", "2026-08-18T14:00:00+01:00", [4, 5, 3, 4, 4, 5, 5, 5, 5, 5, 5], 4.38, 5.0),   # 35/8, 15/3
    ("qr-a", "2026-05-12T10:30:00+01:00", [2, 4, 3, 3, 2, 3, 4, 4, 3, 4, 3], 3.13, 3.33),  # 25/8, 10/3
    ("qr-c", "2026-12-01T11:15:00+00:00", [2, 4, 2, 4, 3, 4, 4, 3, 4, 4, 5], 3.25, 4.33),  # 26/8, 13/3
]


def load(fhir: Fhir) -> None:
    for pid in ("p1", "p2"):
        assert fhir.put(f"Patient/{pid}", {"resourceType": "Patient", "id": pid}).status_code == 201
    for qid, authored, ratings, _, _ in SERIES:
        r = fhir.put(f"QuestionnaireResponse/{qid}", response(ratings, authored=authored, id=qid))
        assert r.status_code == 201, r.text
    # another service user's response is not in p1's trend
    assert fhir.put("QuestionnaireResponse/other", response(subject="Patient/p2", id="other")).status_code == 201


def series(bundle: dict[str, Any], code: str) -> list[tuple[str, Any]]:
    out = []
    for e in bundle.get("entry", []):
        obs = e["resource"]
        if obs["code"]["coding"][0]["code"] == code:
            value = obs["valueQuantity"]["value"] if "valueQuantity" in obs else obs["valueInteger"]
            out.append((obs["effectiveDateTime"], value))
    return out


def trend(fhir: Fhir, query: str = "", patient: str = "p1") -> dict[str, Any]:
    r = fhir.get(f"Patient/{patient}/$dialog-trend{query}")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_trend_gives_both_scores_and_every_item_in_date_order(fhir: Fhir) -> None:
    load(fhir)
    body = trend(fhir)
    assert body["resourceType"] == "Bundle" and body["type"] == "searchset"
    assert body["total"] == 39
    dates = [e["resource"]["effectiveDateTime"] for e in body["entry"]]
    in_order = sorted(SERIES, key=lambda s: s[1])
    assert dates == [d for _, d, *_ in in_order for _ in range(13)]
    assert series(body, "sqol") == [(d, sqol) for _, d, _, sqol, _ in in_order]
    assert series(body, "treatment") == [(d, t) for _, d, _, _, t in in_order]
    for n, code in enumerate(ITEM_CODES):
        assert series(body, code) == [(d, ratings[n]) for _, d, ratings, _, _ in in_order]
    assert {e["resource"]["subject"]["reference"] for e in body["entry"]} == {"Patient/p1"}
    assert body["link"][0] == {"relation": "self", "url": "http://127.0.0.1:8080/fhir/Patient/p1/$dialog-trend"}


def test_trend_equals_the_documented_plain_search(fhir: Fhir) -> None:
    load(fhir)
    plain = fhir.get(f"Observation?subject=Patient/p1&code={quote(','.join(codes()))}&_sort=date&_count=1000")
    assert plain.status_code == 200, plain.text
    ids = [e["resource"]["id"] for e in trend(fhir)["entry"]]
    assert ids == [e["resource"]["id"] for e in plain.json()["entry"]]
    assert len(ids) == 39


def test_start_and_end_bound_the_authored_date(fhir: Fhir) -> None:
    load(fhir)
    body = trend(fhir, "?start=2026-06-01&end=2026-11-30")
    assert series(body, "sqol") == [("2026-08-18T14:00:00+01:00", 4.38)] and body["total"] == 13
    assert series(trend(fhir, "?start=2026-08-19"), "sqol") == [("2026-12-01T11:15:00+00:00", 3.25)]
    assert [v for _, v in series(trend(fhir, "?end=2026-08-18"), "treatment")] == [3.33, 5.0]


def test_since_gives_what_changed(fhir: Fhir) -> None:
    load(fhir)
    stamp = fhir.get("QuestionnaireResponse/qr-c").json()["meta"]["lastUpdated"]
    assert trend(fhir, f"?_since={quote(stamp)}")["total"] == 13
    assert trend(fhir, "?_since=2099-01-01T00:00:00Z")["total"] == 0


def test_paging_continues_as_the_plain_search(fhir: Fhir) -> None:
    load(fhir)
    body = trend(fhir, "?_count=10")
    seen = [e["resource"]["id"] for e in body["entry"]]
    assert len(seen) == 10
    while True:
        nxt = next((link["url"] for link in body["link"] if link["relation"] == "next"), None)
        if nxt is None:
            break
        assert nxt.startswith("http://127.0.0.1:8080/fhir/Observation?_page=")
        r = fhir.get(nxt)
        assert r.status_code == 200, r.text
        body = r.json()
        seen += [e["resource"]["id"] for e in body["entry"]]
    assert seen == [e["resource"]["id"] for e in trend(fhir)["entry"]]


def test_trend_of_unknown_patient_and_bad_parameters(fhir: Fhir) -> None:
    load(fhir)
    r = fhir.get("Patient/nobody/$dialog-trend")
    assert r.status_code == 404 and r.json()["resourceType"] == "OperationOutcome"
    assert fhir.get("Patient/p1/$dialog-trend?colour=red").status_code == 400
    assert fhir.get("Patient/p1/$dialog-trend?_count=ten").status_code == 400
    assert fhir.get("Patient/p1/$dialog-trend?start=yesterday").status_code == 400
    assert fhir.as_(None).get("Patient/p1/$dialog-trend").status_code == 401
    assert trend(fhir, patient="p2")["total"] == 13


def test_trend_follows_the_callers_access(fhir: Fhir, token_for: Any) -> None:
    load(fhir)
    # a patient-scoped caller sees their own trend and not another's
    own = fhir.as_(token_for("patient/*.rs", patient="p1"))
    assert trend(own)["total"] == 39
    assert own.get("Patient/p2/$dialog-trend").status_code == 404
    # no Observation access, no trend
    no_obs = fhir.as_(token_for("system/Patient.rs"))
    assert no_obs.get("Patient/p1/$dialog-trend").status_code == 403


def test_capability_statement_lists_the_operation(fhir: Fhir) -> None:
    statement = fhir.as_(None).get("metadata").json()
    patient = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Patient")
    op = next(o for o in patient["operation"] if o["name"] == "dialog-trend")
    assert op["definition"] == "https://fhir.carebridge.example/OperationDefinition/dialog-trend"
