"""The Observations derived from a DIALOG QuestionnaireResponse, kept in step with it.

A scored response (``completed`` or ``amended``) has 13 derived Observations: the two
scores (``valueQuantity`` in ``{score}``, with ``hasMember`` the item Observations they
average) and one per item (``valueInteger`` 1..7, SNOMED CT code of the item, and a
``more-help`` component when answered). Each has ``derivedFrom`` the response, its
``subject``, ``effectiveDateTime`` = its ``authored``, ``status`` final, category
``survey``, the tag ``https://fhir.carebridge.example/CodeSystem/tag|derived``, and the
response's security labels (``meta.security``), so that consent hides them with it.

Their ids are name-based UUIDs (version 5) of the response id and the score or item, so
writing the same response again rewrites the same Observations (and, content being equal,
writes no new version of them). Any other status (``in-progress``, ``stopped``,
``entered-in-error``), a response that stops being a DIALOG one, and a deleted response
leave none: the Observations are deleted (their history stays).

Clients do not write derived Observations: a create, update, patch or delete of an
Observation carrying the derived tag, or of one currently derived, is refused (422, and
409 for a delete), so that the link to the response cannot be broken from outside.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson

from server.consent.context import AccessContext
from server.dialog import fit
from server.dialog.questionnaire import Dialog, Item, dialog
from server.dialog.scoring import SCORE_SYSTEM, SCORES, Score, score
from server.fhir.errors import Conflict, Unprocessable

if TYPE_CHECKING:
    from server.store.records import StoredResource
    from server.store.unit import UnitOfWork

TAG_SYSTEM = "https://fhir.carebridge.example/CodeSystem/tag"
DERIVED_TAG = {"system": TAG_SYSTEM, "code": "derived", "display": "Derived by the server"}
SURVEY = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                      "code": "survey", "display": "Survey"}]}
SCORE_UNIT = {"unit": "{score}", "system": "http://unitsofmeasure.org", "code": "{score}"}
MORE_HELP = {"coding": [{"system": SCORE_SYSTEM, "code": "more-help", "display": "Wants more help in this area"}]}
#: the namespace of derived Observation ids (uuid5 of "QuestionnaireResponse/<id>#<key>")
ID_NAMESPACE = uuid.UUID("6f3c1d2e-5b7a-4c8e-9a0d-2f4b6c8e0a13")
#: who the derived writes are made by (recorded as their author in the version table)
DERIVATION_CONTEXT = AccessContext.system("carebridge-dialog")


def keys(q: Dialog | None = None) -> list[str]:
    """The derived Observations of one response, in the order they are written."""
    q = q or dialog()
    return [s.code for s in SCORES] + [i.link_id for i in q.items]


def observation_id(response_id: str, key: str) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, f"QuestionnaireResponse/{response_id}#{key}"))


def trend_codes(q: Dialog | None = None) -> list[tuple[str, str]]:
    """(system, code) of every derived Observation: the scores', then the items'."""
    q = q or dialog()
    return [(SCORE_SYSTEM, s.code) for s in SCORES] + [(i.code["system"], i.code["code"]) for i in q.items]


def _base(response: dict[str, Any], key: str) -> dict[str, Any]:
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "id": observation_id(response["id"], key),
        "meta": {"tag": [DERIVED_TAG]},
        "status": "final",
        "category": [SURVEY],
    }
    security = (response.get("meta") or {}).get("security")
    if security:
        # the scores say what the response says: whoever may not see it may not see them
        obs["meta"]["security"] = security
    return obs


def _tail(obs: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    obs["subject"] = {"reference": response["subject"]["reference"]}
    if isinstance(response.get("encounter"), dict) and response["encounter"].get("reference"):
        obs["encounter"] = {"reference": response["encounter"]["reference"]}
    obs["effectiveDateTime"] = response["authored"]
    obs["derivedFrom"] = [{"reference": f"QuestionnaireResponse/{response['id']}"}]
    return obs


def score_observation(response: dict[str, Any], which: Score, value: Decimal, q: Dialog) -> dict[str, Any]:
    obs = _base(response, which.code)
    obs["code"] = {"coding": [{"system": SCORE_SYSTEM, "code": which.code, "display": which.display}],
                   "text": which.display}
    _tail(obs, response)
    obs["valueQuantity"] = {"value": float(value), **SCORE_UNIT}
    obs["hasMember"] = [
        {"reference": f"Observation/{observation_id(response['id'], i.link_id)}"}
        for i in q.items if i.number in which.items
    ]
    return obs


def item_observation(response: dict[str, Any], item: Item, rating: int, more_help: bool | None) -> dict[str, Any]:
    obs = _base(response, item.link_id)
    coding = {k: item.code[k] for k in ("system", "code", "display") if k in item.code}
    obs["code"] = {"coding": [coding], "text": item.text}
    _tail(obs, response)
    obs["valueInteger"] = rating
    if more_help is not None:
        obs["component"] = [{"code": MORE_HELP, "valueBoolean": more_help}]
    return obs


def build(response: dict[str, Any], answers: fit.Answers, q: Dialog | None = None) -> dict[str, dict[str, Any]]:
    """The derived Observations of a scored response, by key (see :func:`keys`)."""
    q = q or dialog()
    out: dict[str, dict[str, Any]] = {}
    for which in SCORES:
        value = score(which, answers.ratings)
        if value is not None:
            out[which.code] = score_observation(response, which, value, q)
    for item in q.items:
        if item.number in answers.ratings:
            out[item.link_id] = item_observation(
                response, item, answers.ratings[item.number], answers.more_help.get(item.number)
            )
    return out


def _tagged(res: dict[str, Any]) -> bool:
    tags = (res.get("meta") or {}).get("tag") or []
    return any(isinstance(t, dict) and t.get("system") == TAG_SYSTEM and t.get("code") == "derived" for t in tags)


def _tagged_content(content: bytes | None) -> bool:
    return content is not None and TAG_SYSTEM.encode() in content and _tagged(orjson.loads(content))


class DialogDerivation:
    """The store write hook for DIALOG responses and their derived Observations."""

    def __init__(self, questionnaire: Dialog | None = None) -> None:
        self._q = questionnaire

    @property
    def q(self) -> Dialog:
        return self._q or dialog()

    def check(self, resource: dict[str, Any]) -> None:
        if resource.get("resourceType") == "QuestionnaireResponse" and fit.is_dialog(resource, self.q):
            fit.check(resource, self.q)

    def written(
        self, unit: UnitOfWork, stored: StoredResource, resource: dict[str, Any], previous: bytes | None
    ) -> None:
        rtype = stored.resource_type
        if rtype == "QuestionnaireResponse":
            # a response that was not a DIALOG one before has no derived Observations to remove
            was_dialog = previous is not None and self.q.url.encode() in previous
            if was_dialog or (fit.is_dialog(resource, self.q) and fit.is_scored(resource)):
                self.sync(unit, resource)
        elif rtype == "Observation" and unit.ctx is not DERIVATION_CONTEXT and (
            _tagged(resource) or _tagged_content(previous)
        ):
            raise Unprocessable(
                "Observations tagged derived are written by the server from the QuestionnaireResponse "
                "they are derived from; change the response instead",
                code="business-rule", expression=["Observation.meta.tag"],
            )

    def deleted(self, unit: UnitOfWork, resource_type: str, id: str, previous: bytes | None) -> None:
        if resource_type == "QuestionnaireResponse":
            if previous is not None and self.q.url.encode() in previous:
                self.sync(unit, {"resourceType": resource_type, "id": id})
        elif resource_type == "Observation" and unit.ctx is not DERIVATION_CONTEXT and _tagged_content(previous):
            raise Conflict(f"Observation/{id} is derived from a QuestionnaireResponse and is deleted with it")

    def sync(self, unit: UnitOfWork, response: dict[str, Any]) -> None:
        """Make the derived Observations of ``response`` what it implies (none unless it is scored)."""
        from server.store.unit import UnitOfWork

        wanted: dict[str, dict[str, Any]] = {}
        if fit.is_dialog(response, self.q) and fit.is_scored(response):
            wanted = build(response, fit.check(response, self.q), self.q)
        derived = UnitOfWork(unit.repo, unit.conn, DERIVATION_CONTEXT)
        for key in keys(self.q):
            oid = observation_id(response["id"], key)
            if key in wanted:
                derived.update("Observation", oid, wanted[key])
            else:
                derived.delete("Observation", oid)
