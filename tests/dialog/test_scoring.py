"""The DIALOG scores, checked against numbers worked out by hand."""

from __future__ import annotations

from decimal import Decimal

import pytest

from server.dialog.questionnaire import dialog
from server.dialog.scoring import SQOL, TREATMENT, mean, score, scores
from tests.dialog.dialogdata import ITEM_CODES, RATINGS


def ratings(values: list[int]) -> dict[int, int]:
    return dict(enumerate(values, start=1))


def test_scores_of_the_reference_ratings() -> None:
    # (3+5+2+6+4+5+6+7)/8 = 38/8 = 4.75 and (4+3+5)/3 = 12/3 = 4
    assert scores(ratings(RATINGS)) == {"sqol": Decimal("4.75"), "treatment": Decimal("4.00")}


@pytest.mark.parametrize(("values", "expected"), [
    ([1] * 8, "1.00"),
    ([7] * 8, "7.00"),
    ([4, 4, 4, 4, 4, 4, 4, 5], "4.13"),   # 33/8 = 4.125, half up
    ([2, 4, 3, 3, 2, 3, 4, 4], "3.13"),   # 25/8 = 3.125
    ([4, 5, 3, 4, 4, 5, 5, 5], "4.38"),   # 35/8 = 4.375
    ([2, 4, 2, 4, 3, 4, 4, 3], "3.25"),   # 26/8
])
def test_quality_of_life_is_the_mean_of_items_1_to_8(values: list[int], expected: str) -> None:
    assert score(SQOL, ratings([*values, 1, 1, 1])) == Decimal(expected)


@pytest.mark.parametrize(("values", "expected"), [
    ([4, 4, 5], "4.33"),   # 13/3 = 4.333...
    ([4, 5, 5], "4.67"),   # 14/3 = 4.666...
    ([3, 4, 3], "3.33"),   # 10/3
    ([5, 5, 5], "5.00"),
])
def test_treatment_satisfaction_is_the_mean_of_items_9_to_11(values: list[int], expected: str) -> None:
    assert score(TREATMENT, ratings([7] * 8 + values)) == Decimal(expected)


def test_a_score_needs_every_item_it_covers() -> None:
    partial = ratings(RATINGS)
    del partial[10]
    assert score(TREATMENT, partial) is None
    assert scores(partial) == {"sqol": Decimal("4.75")}
    with pytest.raises(ValueError):
        mean([])


def test_the_questionnaire_read_from_the_package() -> None:
    q = dialog()
    assert q.url == "https://fhir.carebridge.example/Questionnaire/dialog" and q.version == "1"
    assert [i.link_id for i in q.items] == [f"dialog-{n}" for n in range(1, 12)]
    # bound by SNOMED CT concept, SNOMED's numbering: 6 friendships, 7 partner/family
    assert [i.code["code"] for i in q.items] == ITEM_CODES
    assert "friendships" in q.items[5].text and "partner" in q.items[6].text
    assert q.rating_options == set(range(1, 8))
    assert all(i.required and i.rating.required and i.more_help is not None and i.more_help.type == "boolean"
               for i in q.items)
    assert [c.link_id for c in q.calculated] == ["dialog-sqol", "dialog-treatment"]
    assert q.accepts(q.url) is True and q.accepts(f"{q.url}|1") is True
    assert q.accepts(f"{q.url}|2") is False and q.accepts("https://example.org/Questionnaire/phq9") is None
