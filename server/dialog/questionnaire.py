"""The DIALOG Questionnaire's structure, read once from the product's FHIR package."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from server.definitions.package import default_package

ORDINAL_URLS = (
    "http://hl7.org/fhir/StructureDefinition/ordinalValue",
    "http://hl7.org/fhir/StructureDefinition/iso21090-CO-value",
)


@dataclass(frozen=True)
class Question:
    """A question inside an item's group: the rating or the 'more help' question."""

    link_id: str
    type: str
    required: bool
    #: for a choice: (system, code) -> ordinal value of each answer option
    options: dict[tuple[str, str], int]


@dataclass(frozen=True)
class Item:
    """One of the 11 DIALOG items: a group with a rating and a 'more help' question."""

    number: int
    link_id: str
    text: str
    #: the SNOMED CT observable of the item score
    code: dict[str, Any]
    required: bool
    rating: Question
    more_help: Question | None

    @property
    def children(self) -> dict[str, Question]:
        found = {self.rating.link_id: self.rating}
        if self.more_help is not None:
            found[self.more_help.link_id] = self.more_help
        return found


@dataclass(frozen=True)
class Calculated:
    """A read-only item the server computes (the two scores)."""

    link_id: str
    type: str
    text: str


@dataclass(frozen=True)
class Dialog:
    url: str
    version: str
    resource: dict[str, Any]
    items: tuple[Item, ...]
    calculated: tuple[Calculated, ...]

    @property
    def rating_options(self) -> set[int]:
        return {v for item in self.items for v in item.rating.options.values()}

    def item(self, link_id: str) -> Item | None:
        return next((i for i in self.items if i.link_id == link_id), None)

    def accepts(self, canonical: str) -> bool | None:
        """True for this Questionnaire (with or without ``|version``), False for another version
        of it, None for another questionnaire."""
        url, _, version = canonical.partition("|")
        if url != self.url:
            return None
        return version in ("", self.version)


def _ordinal(coding: dict[str, Any]) -> int | None:
    for ext in coding.get("extension") or []:
        if ext.get("url") in ORDINAL_URLS:
            value = ext.get("valueDecimal", ext.get("valueInteger"))
            if isinstance(value, int | float) and float(value).is_integer():
                return int(value)
    code = coding.get("code")
    return int(code) if isinstance(code, str) and code.isdigit() else None


def _question(raw: dict[str, Any]) -> Question:
    options: dict[tuple[str, str], int] = {}
    for opt in raw.get("answerOption") or []:
        coding = opt.get("valueCoding")
        if isinstance(coding, dict):
            value = _ordinal(coding)
            if value is not None:
                options[(coding["system"], coding["code"])] = value
    return Question(raw["linkId"], raw["type"], bool(raw.get("required")), options)


def parse(resource: dict[str, Any]) -> Dialog:
    items: list[Item] = []
    calculated: list[Calculated] = []
    for raw in resource.get("item") or []:
        if raw.get("type") == "group":
            children = {c["linkId"].rsplit(".", 1)[-1]: c for c in raw.get("item") or []}
            if "rating" not in children:
                raise ValueError(f"DIALOG item {raw['linkId']} has no rating question")
            items.append(Item(
                number=int(raw["linkId"].rsplit("-", 1)[-1]),
                link_id=raw["linkId"],
                text=raw.get("text", ""),
                code=(raw.get("code") or [{}])[0],
                required=bool(raw.get("required")),
                rating=_question(children["rating"]),
                more_help=_question(children["more-help"]) if "more-help" in children else None,
            ))
        elif raw.get("readOnly"):
            calculated.append(Calculated(raw["linkId"], raw["type"], raw.get("text", "")))
    return Dialog(resource["url"], resource["version"], resource, tuple(items), tuple(calculated))


@cache
def dialog() -> Dialog:
    """The DIALOG Questionnaire of the package this server runs."""
    found = default_package().get("Questionnaire", "dialog")
    if found is None:
        raise RuntimeError("the FHIR package has no Questionnaire/dialog")
    return parse(found.resource)
