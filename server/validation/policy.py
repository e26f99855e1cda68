"""Which profiles a resource is validated against.

Two sources: the profiles the resource claims in ``meta.profile`` (each one the server
holds is applied; one it does not hold gives a warning, never an error, since a resource
may conform to profiles this server has never heard of), and the profiles the server
requires, configured here.

Required profiles, and why so few:

- ``QuestionnaireResponse`` answering the DIALOG Questionnaire (``questionnaire`` is its
  canonical, with or without a version) must meet ``dialog-response``: the product
  derives scores from it, so a response that does not fit is refused (issue 7).
- Nothing else yet. Requiring ``carebridge-patient`` or ``cap-referral`` on every Patient or
  ServiceRequest would refuse what the source systems send today (a Patient without an
  NHS number verification status, a referral not yet triaged by the Central Access Point);
  the adapters claim the profiles in ``meta.profile`` when their output meets them, and
  that claim is then enforced. Add a rule here when a type must always conform.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

CB: Final = "https://fhir.carebridge.example"
DIALOG_QUESTIONNAIRE: Final = f"{CB}/Questionnaire/dialog"
DIALOG_RESPONSE: Final = f"{CB}/StructureDefinition/dialog-response"

Condition = Callable[[dict[str, Any]], bool]


def _answers_dialog(resource: dict[str, Any]) -> bool:
    questionnaire = resource.get("questionnaire")
    return isinstance(questionnaire, str) and questionnaire.split("|", 1)[0] == DIALOG_QUESTIONNAIRE


#: resource type -> (profile URL, when it applies) the server requires on every write
REQUIRED_PROFILES: Final[Mapping[str, tuple[tuple[str, Condition], ...]]] = {
    "QuestionnaireResponse": ((DIALOG_RESPONSE, _answers_dialog),),
}


def claimed(resource: dict[str, Any]) -> list[str]:
    meta = resource.get("meta")
    profiles = meta.get("profile") if isinstance(meta, dict) else None
    if not isinstance(profiles, list):
        return []
    return [p for p in profiles if isinstance(p, str)]


def required(resource: dict[str, Any]) -> list[str]:
    rules = REQUIRED_PROFILES.get(str(resource.get("resourceType")), ())
    return [url for url, applies in rules if applies(resource)]


def applicable(resource: dict[str, Any], extra: list[str] | None = None) -> list[str]:
    """Claimed, then required, then asked-for profiles, each once."""
    found: list[str] = []
    for url in (*claimed(resource), *required(resource), *(extra or [])):
        if url.split("|", 1)[0] not in {u.split("|", 1)[0] for u in found}:
            found.append(url)
    return found
