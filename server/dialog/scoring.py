"""The two DIALOG scores: the mean of the item ratings they cover.

Subjective quality of life is the mean of items 1-8 (life domains), satisfaction with
treatment the mean of items 9-11. A score is reported to 2 decimal places, rounded half
up (13/3 = 4.33, 33/8 = 4.125 -> 4.13); the item ratings are stored beside it, so the
exact mean can always be recomputed. A score is only computed when every item it covers
is rated: a completed response answers all 11 (see :mod:`server.dialog.fit`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

SCORE_SYSTEM = "https://fhir.carebridge.example/CodeSystem/dialog-score"
TWO_PLACES = Decimal("0.01")


@dataclass(frozen=True)
class Score:
    #: code in the dialog-score CodeSystem, also the key of its derived Observation
    code: str
    #: the Questionnaire's read-only item for it
    link_id: str
    display: str
    items: tuple[int, ...]


SQOL = Score("sqol", "dialog-sqol", "DIALOG subjective quality of life (mean of items 1-8)", tuple(range(1, 9)))
TREATMENT = Score(
    "treatment", "dialog-treatment", "DIALOG satisfaction with treatment (mean of items 9-11)", (9, 10, 11)
)
SCORES: tuple[Score, ...] = (SQOL, TREATMENT)


def mean(ratings: list[int]) -> Decimal:
    """The mean, rounded half up to 2 decimal places."""
    if not ratings:
        raise ValueError("a mean needs at least one rating")
    return (Decimal(sum(ratings)) / Decimal(len(ratings))).quantize(TWO_PLACES, rounding=ROUND_HALF_UP)


def exact(which: Score, ratings: dict[int, int]) -> Decimal | None:
    """The unrounded mean (to the context's 28 digits), or None when one of its items is unrated."""
    if any(n not in ratings for n in which.items):
        return None
    return Decimal(sum(ratings[n] for n in which.items)) / Decimal(len(which.items))


def score(which: Score, ratings: dict[int, int]) -> Decimal | None:
    """The score over ``ratings`` (item number -> 1..7), or None when one of its items is unrated."""
    if any(n not in ratings for n in which.items):
        return None
    return mean([ratings[n] for n in which.items])


def scores(ratings: dict[int, int]) -> dict[str, Decimal]:
    out = {}
    for s in SCORES:
        value = score(s, ratings)
        if value is not None:
            out[s.code] = value
    return out
