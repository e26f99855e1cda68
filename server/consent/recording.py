"""What a recorded consent decision must say before the store accepts it (document 003, 3.14).

A refusal is a ``deny`` provision and needs nothing more to be respected. An override
is different: it shares a record against the service user's wishes, so the policy
requires it to record why (risk, lack of capacity, a legal duty), the rationale, who
decided and when; an override for lack of capacity also needs the capacity assessment
(the ``consent-capacity`` extension: capacity found lacking, on a date, by an assessor
or in a linked assessment record). A Consent that overrides without saying all of that
is refused with 422, located, and nothing is stored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from server.consent.rules import OVERRIDE_URL
from server.fhir.errors import Unprocessable

if TYPE_CHECKING:
    from server.store.records import StoredResource
    from server.store.unit import UnitOfWork

CAPACITY_URL = "https://fhir.carebridge.example/StructureDefinition/consent-capacity"
OVERRIDE_REASON_SYSTEM = "https://fhir.carebridge.example/CodeSystem/consent-override-reason"
OVERRIDE_REASONS = frozenset({"risk", "lacks-capacity", "legal-duty"})


def _parts(extension: dict[str, Any]) -> dict[str, Any]:
    """The sub-extensions of a complex extension by url, with their value."""
    out: dict[str, Any] = {}
    for part in extension.get("extension") or []:
        if isinstance(part, dict):
            value = next((v for k, v in part.items() if k.startswith("value")), None)
            out[str(part.get("url"))] = value
    return out


def _overrides(element: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    found = [(f"{path}.extension[{i}]", e) for i, e in enumerate(element.get("extension") or [])
             if isinstance(e, dict) and e.get("url") == OVERRIDE_URL]
    nested = enumerate(element.get("provision") or []) if path != "Consent" else iter(())
    for i, child in nested:
        if isinstance(child, dict):
            found += _overrides(child, f"{path}.provision[{i}]")
    return found


def override_problems(consent: dict[str, Any]) -> list[tuple[str, str]]:
    """(location, reason) for every override that does not record what the policy requires."""
    places = _overrides(consent, "Consent")
    if isinstance(consent.get("provision"), dict):
        places += _overrides(consent["provision"], "Consent.provision")
    problems: list[tuple[str, str]] = []
    for where, ext in places:
        parts = _parts(ext)
        reason = parts.get("reason") or {}
        codes = {c.get("code") for c in reason.get("coding") or []
                 if isinstance(c, dict) and c.get("system") == OVERRIDE_REASON_SYSTEM}
        if not codes & OVERRIDE_REASONS:
            problems.append((where, "an override must give its reason (risk, lacks-capacity or legal-duty)"))
        if not str(parts.get("rationale") or "").strip():
            problems.append((where, "an override must record its rationale"))
        if not isinstance(parts.get("decidedBy"), dict) or not parts["decidedBy"]:
            problems.append((where, "an override must record who decided"))
        if not parts.get("date"):
            problems.append((where, "an override must record when it was decided"))
        if "lacks-capacity" in codes:
            problems += _capacity_problems(consent)
    return problems


def _capacity_problems(consent: dict[str, Any]) -> list[tuple[str, str]]:
    found = [(i, e) for i, e in enumerate(consent.get("extension") or [])
             if isinstance(e, dict) and e.get("url") == CAPACITY_URL]
    if not found:
        return [("Consent.extension", "an override for lack of capacity needs the capacity assessment "
                 "(consent-capacity extension)")]
    i, ext = found[0]
    parts = _parts(ext)
    where = f"Consent.extension[{i}]"
    out = []
    if parts.get("hasCapacity") is not False:
        out.append((where, "an override for lack of capacity needs an assessment that found capacity lacking"))
    if not parts.get("date"):
        out.append((where, "the capacity assessment must record its date"))
    if not parts.get("assessor") and not parts.get("assessment"):
        out.append((where, "the capacity assessment must name its assessor or link the assessment record"))
    return out


class ConsentRecording:
    """The store's write hook for Consents: refuses overrides that do not record enough."""

    def check(self, resource: dict[str, Any]) -> None:
        if resource.get("resourceType") != "Consent":
            return
        problems = override_problems(resource)
        if problems:
            where, reason = problems[0]
            raise Unprocessable(
                f"{where}: {reason}", code="business-rule", expression=[where],
                issues=[{"severity": "error", "code": "business-rule", "diagnostics": f"{w}: {r}",
                         "expression": [w]} for w, r in problems[1:]],
            )

    def written(
        self, unit: UnitOfWork, stored: StoredResource, resource: dict[str, Any], previous: bytes | None
    ) -> None:
        return None

    def deleted(self, unit: UnitOfWork, resource_type: str, id: str, previous: bytes | None) -> None:
        return None
