"""Does a QuestionnaireResponse fit the DIALOG Questionnaire? Refuse it, located, if not.

Rules (every issue is reported, each with the FHIRPath location of the offending element,
e.g. ``QuestionnaireResponse.item[3].item[0].answer[0]``):

- ``questionnaire`` is the DIALOG canonical, with no version or the package's version;
  another version of it is refused (its items are unknown here);
- every linkId is one of the Questionnaire's, in its place (a rating inside its item's
  group), at most once; groups carry no answers, answers no nested items;
- a rating is one answer: ``valueCoding`` with one of the Questionnaire's answer options
  (system and code), or ``valueInteger`` 1..7 (the option's ordinal value);
- 'more help' is one ``valueBoolean``; the read-only scores, if sent, are one
  ``valueDecimal`` each that must agree with the server's score to 2 decimal places;
- ``completed`` and ``amended`` responses are scored, so every item the Questionnaire marks
  required (all 11 groups, each rating and each 'more help') is answered, and ``subject``
  (a Patient) and ``authored`` are present;
- ``in-progress`` and ``stopped`` may be partial, and ``entered-in-error`` may be anything
  that once fitted: what they do answer must still fit, but nothing is required of them,
  and they get no scores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from server.dialog.questionnaire import Dialog, Item, Question, dialog
from server.dialog.scoring import SCORES, exact, score
from server.fhir.errors import Unprocessable

#: statuses whose responses are scored (and so must be complete)
SCORED_STATUSES = frozenset({"completed", "amended"})
_VALUE_KEYS = ("valueBoolean", "valueDecimal", "valueInteger", "valueDate", "valueDateTime", "valueTime",
               "valueString", "valueUri", "valueAttachment", "valueCoding", "valueQuantity", "valueReference")


@dataclass
class Answers:
    """What a fitting response answers: item number -> rating, item number -> wants more help."""

    ratings: dict[int, int] = field(default_factory=dict)
    more_help: dict[int, bool] = field(default_factory=dict)


def is_dialog(res: dict[str, Any], questionnaire: Dialog | None = None) -> bool:
    q = questionnaire or dialog()
    canonical = res.get("questionnaire")
    return isinstance(canonical, str) and q.accepts(canonical) is not None


def is_scored(res: dict[str, Any]) -> bool:
    return res.get("status") in SCORED_STATUSES


class _Checker:
    def __init__(self, q: Dialog) -> None:
        self.q = q
        self.issues: list[dict[str, Any]] = []
        self.answers = Answers()
        self.calculated: list[tuple[str, str, Decimal]] = []

    def problem(self, where: str, message: str, code: str = "value") -> None:
        self.issues.append({"severity": "error", "code": code, "diagnostics": f"{where}: {message}",
                            "expression": [where]})

    def run(self, res: dict[str, Any]) -> None:
        canonical = res["questionnaire"]
        if self.q.accepts(canonical) is False:
            self.problem("QuestionnaireResponse.questionnaire",
                         f"version {canonical.partition('|')[2]!r} of DIALOG is not known here; "
                         f"this server has version {self.q.version!r}", "not-supported")
            return
        items = res.get("item") or []
        seen: set[str] = set()
        for i, raw in enumerate(items if isinstance(items, list) else []):
            where = f"QuestionnaireResponse.item[{i}]"
            link_id = raw.get("linkId") if isinstance(raw, dict) else None
            if not isinstance(link_id, str):
                self.problem(where, "an item needs a linkId", "required")
                continue
            if link_id in seen:
                self.problem(f"{where}.linkId", f"{link_id} is answered twice", "structure")
                continue
            seen.add(link_id)
            item = self.q.item(link_id)
            if item is not None:
                self.group(where, item, raw)
            elif any(c.link_id == link_id for c in self.q.calculated):
                self.calculated_item(where, link_id, raw)
            else:
                self.problem(f"{where}.linkId", f"{link_id!r} is not an item of the DIALOG Questionnaire",
                             "structure")
        if is_scored(res):
            self.complete(res, seen)
            self.check_calculated()

    def group(self, where: str, item: Item, raw: dict[str, Any]) -> None:
        if raw.get("answer"):
            self.problem(f"{where}.answer", f"{item.link_id} is a group: its questions carry the answers",
                         "structure")
        seen: set[str] = set()
        for j, child in enumerate(raw.get("item") or []):
            cwhere = f"{where}.item[{j}]"
            link_id = child.get("linkId") if isinstance(child, dict) else None
            question = item.children.get(link_id) if isinstance(link_id, str) else None
            if question is None:
                self.problem(f"{cwhere}.linkId", f"{link_id!r} is not a question of {item.link_id}", "structure")
                continue
            if link_id in seen:
                self.problem(f"{cwhere}.linkId", f"{link_id} is answered twice", "structure")
                continue
            seen.add(question.link_id)
            self.question(cwhere, item, question, child)

    def question(self, where: str, item: Item, question: Question, raw: dict[str, Any]) -> None:
        if raw.get("item"):
            self.problem(f"{where}.item", f"{question.link_id} has no nested questions", "structure")
        answers = raw.get("answer") or []
        if len(answers) > 1:
            self.problem(f"{where}.answer[1]", f"{question.link_id} takes one answer", "structure")
        if not answers:
            return
        answer = answers[0]
        awhere = f"{where}.answer[0]"
        if not isinstance(answer, dict):
            self.problem(awhere, "an answer is an object")
            return
        if answer.get("item"):
            self.problem(f"{awhere}.item", "DIALOG answers carry no nested items", "structure")
        kind = next((k for k in _VALUE_KEYS if k in answer), None)
        if question is item.rating:
            value = self.rating(awhere, question, answer, kind)
            if value is not None:
                self.answers.ratings[item.number] = value
        elif question.type == "boolean":
            if kind != "valueBoolean" or not isinstance(answer["valueBoolean"], bool):
                self.problem(awhere, f"{question.link_id} is answered with valueBoolean (true or false), "
                             f"not {kind or 'nothing'}")
            else:
                self.answers.more_help[item.number] = answer["valueBoolean"]

    def rating(self, where: str, question: Question, answer: dict[str, Any], kind: str | None) -> int | None:
        allowed = sorted(set(question.options.values()))
        low, high = allowed[0], allowed[-1]
        if kind == "valueCoding":
            coding = answer["valueCoding"]
            key = (coding.get("system"), coding.get("code")) if isinstance(coding, dict) else None
            if key not in question.options:
                self.problem(where,
                             f"{question.link_id} is rated with a code {low}..{high} of "
                             f"{next(iter(question.options))[0]}, not {key[0] if key else None}|"
                             f"{key[1] if key else None}")
                return None
            return question.options[key]
        if kind == "valueInteger":
            value = answer["valueInteger"]
            if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
                self.problem(where, f"{question.link_id} is rated {low}..{high}, not {value!r}")
                return None
            return value
        self.problem(where, f"{question.link_id} is rated with valueCoding (the Questionnaire's options) or "
                     f"valueInteger {low}..{high}, not {kind or 'nothing'}")
        return None

    def calculated_item(self, where: str, link_id: str, raw: dict[str, Any]) -> None:
        if raw.get("item"):
            self.problem(f"{where}.item", f"{link_id} has no nested questions", "structure")
        answers = raw.get("answer") or []
        if len(answers) > 1:
            self.problem(f"{where}.answer[1]", f"{link_id} takes one answer", "structure")
        if not answers:
            return
        value = answers[0].get("valueDecimal") if isinstance(answers[0], dict) else None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(f"{where}.answer[0]", f"{link_id} is answered with valueDecimal")
            return
        try:
            self.calculated.append((f"{where}.answer[0]", link_id, Decimal(str(value))))
        except InvalidOperation:  # pragma: no cover - a JSON number is always a decimal
            self.problem(f"{where}.answer[0]", f"{link_id} is answered with valueDecimal")

    def complete(self, res: dict[str, Any], seen: set[str]) -> None:
        status = res.get("status")
        items = res.get("item") or []
        for item in self.q.items:
            if item.required and item.link_id not in seen:
                self.problem("QuestionnaireResponse.item",
                             f"{item.link_id} ({item.text}) is required in a {status} response", "required")
        for i, raw in enumerate(items if isinstance(items, list) else []):
            group = self.q.item(str(raw.get("linkId"))) if isinstance(raw, dict) else None
            if group is None:
                continue
            answered = {c.get("linkId") for c in raw.get("item") or [] if isinstance(c, dict) and c.get("answer")}
            for question in group.children.values():
                if question.required and question.link_id not in answered:
                    self.problem(f"QuestionnaireResponse.item[{i}].item",
                                 f"{question.link_id} is required in a {status} response", "required")
        subject = (res.get("subject") or {}).get("reference")
        if not isinstance(subject, str) or not subject.startswith("Patient/"):
            self.problem("QuestionnaireResponse.subject",
                         f"a {status} DIALOG response needs its subject, a Patient reference", "required")
        if not res.get("authored"):
            self.problem("QuestionnaireResponse.authored",
                         f"a {status} DIALOG response needs authored: its scores are dated by it", "required")

    def check_calculated(self) -> None:
        by_link = {s.link_id: s for s in SCORES}
        for where, link_id, given in self.calculated:
            which = by_link.get(link_id)
            mean = exact(which, self.answers.ratings) if which else None
            if which is not None and mean is not None and abs(given - mean) > Decimal("0.005"):
                self.problem(where, f"{link_id} is {given}, but the ratings give {score(which, self.answers.ratings)} "
                             "(the server computes it; leave it out or send the same)", "business-rule")


def check(res: dict[str, Any], questionnaire: Dialog | None = None) -> Answers:
    """The answers of a DIALOG response; raises 422 with every issue when it does not fit."""
    checker = _Checker(questionnaire or dialog())
    checker.run(res)
    if checker.issues:
        first = checker.issues[0]
        more = f" (and {len(checker.issues) - 1} more)" if len(checker.issues) > 1 else ""
        raise Unprocessable(f"{first['diagnostics']}{more}", code=first["code"],
                            expression=first["expression"], issues=checker.issues[1:])
    return checker.answers
