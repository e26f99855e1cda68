"""DIALOG responses for the tests, built the way a client would send them."""

from __future__ import annotations

import copy
from typing import Any

URL = "https://fhir.carebridge.example/Questionnaire/dialog"
SATISFACTION = "https://fhir.carebridge.example/CodeSystem/dialog-satisfaction"
SCORE = "https://fhir.carebridge.example/CodeSystem/dialog-score"
SNOMED = "http://snomed.info/sct"
TAG = "https://fhir.carebridge.example/CodeSystem/tag"
#: the SNOMED CT observables of items 1..11 (reference/dialog.md)
ITEM_CODES = ["1037651000000100", "1037661000000102", "1037671000000109", "1037681000000106", "1037691000000108",
              "1037701000000108", "1037711000000105", "1037721000000104", "1037731000000102", "1037741000000106",
              "1037751000000109"]
#: ratings of items 1..11 with hand-worked scores: (3+5+2+6+4+5+6+7)/8 = 38/8 = 4.75; (4+3+5)/3 = 4.00
RATINGS = [3, 5, 2, 6, 4, 5, 6, 7, 4, 3, 5]


def response(
    ratings: list[int | None] | None = None, *, status: str = "completed", subject: str = "Patient/p1",
    authored: str = "2026-11-02T10:00:00+00:00", coded: bool = True, more_help: list[bool | None] | None = None,
    canonical: str = f"{URL}|1", id: str | None = None,
) -> dict[str, Any]:
    """A DIALOG QuestionnaireResponse; a rating of None leaves that item's rating out."""
    ratings = list(RATINGS if ratings is None else ratings)
    helps = more_help if more_help is not None else [r is not None and r <= 3 for r in ratings]
    items = []
    for n, (rating, helped) in enumerate(zip(ratings, helps, strict=True), start=1):
        children: list[dict[str, Any]] = []
        if rating is not None:
            value: dict[str, Any] = (
                {"valueCoding": {"system": SATISFACTION, "code": str(rating)}} if coded else {"valueInteger": rating}
            )
            children.append({"linkId": f"dialog-{n}.rating", "answer": [value]})
        if helped is not None:
            children.append({"linkId": f"dialog-{n}.more-help", "answer": [{"valueBoolean": helped}]})
        items.append({"linkId": f"dialog-{n}", "item": children})
    res: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse", "questionnaire": canonical, "status": status,
        "subject": {"reference": subject}, "authored": authored, "item": items,
    }
    if id is not None:
        res["id"] = id
    return res


def with_answer(res: dict[str, Any], item: int, answer: dict[str, Any], child: int = 0) -> dict[str, Any]:
    """A copy of ``res`` whose item ``item`` (0-based), question ``child``, has ``answer``."""
    out = copy.deepcopy(res)
    out["item"][item]["item"][child]["answer"] = [answer]
    return out


def codes() -> list[str]:
    return [f"{SCORE}|sqol", f"{SCORE}|treatment", *(f"{SNOMED}|{c}" for c in ITEM_CODES)]
