"""Refusal of DIALOG responses that do not fit the Questionnaire: one rule per test, each
with the issue located where the problem is."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from server.dialog.fit import check
from server.fhir.errors import Unprocessable
from tests.dialog.dialogdata import RATINGS, SATISFACTION, URL, response, with_answer


def refused(res: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(Unprocessable) as caught:
        check(res)
    assert caught.value.status == 422
    return caught.value.issues()


def expressions(res: dict[str, Any]) -> list[str]:
    return [i["expression"][0] for i in refused(res)]


def test_a_complete_response_fits_coded_or_as_integers() -> None:
    coded = check(response())
    assert coded.ratings == dict(enumerate(RATINGS, start=1))
    assert coded.more_help[1] is True and coded.more_help[2] is False  # rated 3 and 5
    assert check(response(coded=False)).ratings == coded.ratings
    assert check(response(canonical=URL)).ratings == coded.ratings  # without |version


def test_missing_item_is_refused() -> None:
    res = response()
    del res["item"][3]
    issues = refused(res)
    assert [i["expression"] for i in issues] == [["QuestionnaireResponse.item"]]
    assert "dialog-4" in issues[0]["diagnostics"] and issues[0]["code"] == "required"


def test_missing_rating_is_refused() -> None:
    ratings: list[int | None] = list(RATINGS)
    ratings[9] = None
    assert expressions(response(ratings, more_help=[False] * 11)) == ["QuestionnaireResponse.item[9].item"]


def test_missing_more_help_is_refused_in_a_completed_response() -> None:
    helps: list[bool | None] = [False] * 11
    helps[0] = None
    issues = refused(response(more_help=helps))
    assert issues[0]["expression"] == ["QuestionnaireResponse.item[0].item"]
    assert "dialog-1.more-help" in issues[0]["diagnostics"]


@pytest.mark.parametrize("rating", [0, 8])
def test_rating_out_of_range_is_refused(rating: int) -> None:
    bad = with_answer(response(coded=False), 3, {"valueInteger": rating})
    issues = refused(bad)
    assert issues[0]["expression"] == ["QuestionnaireResponse.item[3].item[0].answer[0]"]
    assert f"not {rating}" in issues[0]["diagnostics"] and len(issues) == 1


@pytest.mark.parametrize("code", ["0", "8"])
def test_coded_rating_out_of_range_is_refused(code: str) -> None:
    bad = with_answer(response(), 3, {"valueCoding": {"system": SATISFACTION, "code": code}})
    assert expressions(bad) == ["QuestionnaireResponse.item[3].item[0].answer[0]"]


def test_rating_coded_in_another_system_is_refused() -> None:
    bad = with_answer(response(), 0, {"valueCoding": {"system": "http://loinc.org", "code": "3"}})
    assert expressions(bad) == ["QuestionnaireResponse.item[0].item[0].answer[0]"]


@pytest.mark.parametrize("answer", [{"valueString": "5"}, {"valueDecimal": 4.5}, {"valueBoolean": True},
                                    {"valueInteger": True}])
def test_rating_of_the_wrong_type_is_refused(answer: dict[str, Any]) -> None:
    assert expressions(with_answer(response(), 2, answer)) == ["QuestionnaireResponse.item[2].item[0].answer[0]"]


@pytest.mark.parametrize("answer", [{"valueString": "yes"}, {"valueInteger": 1},
                                    {"valueCoding": {"system": "http://terminology.hl7.org/CodeSystem/v2-0136",
                                                     "code": "Y"}}])
def test_more_help_of_the_wrong_type_is_refused(answer: dict[str, Any]) -> None:
    issues = refused(with_answer(response(), 5, answer, child=1))
    assert issues[0]["expression"] == ["QuestionnaireResponse.item[5].item[1].answer[0]"]
    assert "valueBoolean" in issues[0]["diagnostics"]


def test_unknown_item_is_refused() -> None:
    res = response()
    res["item"].append({"linkId": "dialog-12", "item": []})
    assert expressions(res) == ["QuestionnaireResponse.item[11].linkId"]


def test_unknown_question_in_an_item_is_refused() -> None:
    res = response()
    res["item"][4]["item"].append({"linkId": "dialog-4.rating", "answer": [{"valueInteger": 4}]})
    assert expressions(res) == ["QuestionnaireResponse.item[4].item[2].linkId"]


def test_item_answered_twice_is_refused() -> None:
    res = response()
    res["item"].append(copy.deepcopy(res["item"][0]))
    assert expressions(res) == ["QuestionnaireResponse.item[11].linkId"]


def test_two_answers_to_one_rating_are_refused() -> None:
    res = response()
    res["item"][1]["item"][0]["answer"].append({"valueInteger": 2})
    assert expressions(res) == ["QuestionnaireResponse.item[1].item[0].answer[1]"]


def test_every_issue_is_reported() -> None:
    res = with_answer(with_answer(response(coded=False), 0, {"valueInteger": 0}), 10, {"valueInteger": 9})
    assert expressions(res) == ["QuestionnaireResponse.item[0].item[0].answer[0]",
                                "QuestionnaireResponse.item[10].item[0].answer[0]"]


def test_another_version_of_dialog_is_refused() -> None:
    issues = refused(response(canonical=f"{URL}|2"))
    assert issues[0]["expression"] == ["QuestionnaireResponse.questionnaire"]


def test_a_scored_response_needs_subject_and_authored() -> None:
    res = response()
    del res["authored"]
    res["subject"] = {"reference": "Group/g1"}
    assert expressions(res) == ["QuestionnaireResponse.subject", "QuestionnaireResponse.authored"]


def test_sent_scores_must_agree_with_the_ratings() -> None:
    res = response()
    res["item"] += [{"linkId": "dialog-sqol", "answer": [{"valueDecimal": 4.75}]},
                    {"linkId": "dialog-treatment", "answer": [{"valueDecimal": 4}]}]
    check(res)
    res["item"][-1]["answer"] = [{"valueDecimal": 3.5}]
    issues = refused(res)
    assert issues[0]["expression"] == ["QuestionnaireResponse.item[12].answer[0]"]
    assert issues[0]["code"] == "business-rule"


def test_in_progress_may_be_partial_but_what_it_answers_must_fit() -> None:
    partial = response([3, 4, None, None, None, None, None, None, None, None, None], status="in-progress",
                       more_help=[True, None, None, None, None, None, None, None, None, None, None])
    del partial["item"][5:]
    assert check(partial).ratings == {1: 3, 2: 4}
    bad = with_answer(partial, 1, {"valueInteger": 8})
    assert expressions(bad) == ["QuestionnaireResponse.item[1].item[0].answer[0]"]


def test_other_questionnaires_are_not_checked() -> None:
    from server.dialog.derived import DialogDerivation

    other = response([9] * 11, canonical="https://example.org/Questionnaire/phq9")
    DialogDerivation().check(other)  # no error: not a DIALOG response
