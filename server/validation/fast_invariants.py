"""R4 invariants that every write meets, decided in Python rather than by fhirpathpy.

fhirpathpy takes 20-150 microseconds for each evaluation, however small the expression: a
GP referral's nine resources spent more time in ``cpt-2`` and ``con-3`` than in being
stored. The invariants here are the ones that apply to nearly every resource the adapters
write (ContactPoint, Quantity, Attachment, Period, Condition, Observation, ServiceRequest,
Patient.contact). Each function reads the same JSON the FHIRPath would and returns what the
expression gives (True, or False for a failure), or None where it cannot decide cheaply
(``per-1`` on two dates of different forms): then fhirpathpy decides.

``tests/validation/test_invariants.py`` checks every one against fhirpathpy on HL7's R4
examples, the product's own examples and cases written to make each one fail.

FHIRPath reads of the JSON, as R4's JSON format defines them: an element exists when its
property is present, or, for a primitive, when ``_name`` carries its id or extensions;
``name`` of a choice element (``value[x]``) is any ``valueQuantity``, ``valueString``...
The resources reaching these checks have passed the structure checker, so no property holds
``null``, ``[]``, ``{}`` or ``""``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

VER_STATUS: Final = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CLINICAL: Final = "http://terminology.hl7.org/CodeSystem/condition-clinical"

Check = Callable[[Any, Any, Any], "bool | None"]


def _exists(node: Any, name: str) -> bool:
    return isinstance(node, dict) and (name in node or f"_{name}" in node)


def _choice_exists(node: Any, name: str) -> bool:
    """``name.exists()`` for a choice element ``name[x]``."""
    if not isinstance(node, dict):
        return False
    cut = len(name)
    for key in node:
        bare = key[1:] if key.startswith("_") else key
        if len(bare) > cut and bare.startswith(name) and bare[cut].isupper():
            return True
    return False


def _has_value(node: Any, name: str) -> bool:
    return isinstance(node, dict) and node.get(name) is not None


def _codings(concept: Any) -> Iterator[dict[str, Any]]:
    """``concept.coding`` for one CodeableConcept (or a list of them)."""
    for cc in concept if isinstance(concept, list) else [concept]:
        if isinstance(cc, dict):
            for coding in cc.get("coding") or ():
                if isinstance(coding, dict):
                    yield coding


def _coded(concept: Any, system: str, codes: frozenset[str]) -> bool:
    """``concept.coding.where(system = S and code in codes).exists()``."""
    return any(c.get("system") == system and c.get("code") in codes for c in _codings(concept))


_EIE: Final = frozenset({"entered-in-error"})
_NOT_ACTIVE: Final = frozenset({"resolved", "remission", "inactive"})


def _cpt_2(node: Any, resource: Any, root: Any) -> bool | None:
    # value.empty() or system.exists()
    return not _exists(node, "value") or _exists(node, "system")


def _qty_3(node: Any, resource: Any, root: Any) -> bool | None:
    # code.empty() or system.exists()
    return not _exists(node, "code") or _exists(node, "system")


def _att_1(node: Any, resource: Any, root: Any) -> bool | None:
    # data.empty() or contentType.exists()
    return not _exists(node, "data") or _exists(node, "contentType")


def _prr_1(node: Any, resource: Any, root: Any) -> bool | None:
    # orderDetail.empty() or code.exists()
    return not _exists(node, "orderDetail") or _exists(node, "code")


def _pat_1(node: Any, resource: Any, root: Any) -> bool | None:
    # name.exists() or telecom.exists() or address.exists() or organization.exists()
    return any(_exists(node, n) for n in ("name", "telecom", "address", "organization"))


def _obs_6(node: Any, resource: Any, root: Any) -> bool | None:
    # dataAbsentReason.empty() or value.empty()
    return not _exists(node, "dataAbsentReason") or not _choice_exists(node, "value")


def _obs_7(node: Any, resource: Any, root: Any) -> bool | None:
    # value.empty() or component.code.where(coding.intersect(%resource.code.coding).exists()).empty()
    if not _choice_exists(node, "value"):
        return True
    own = list(_codings(resource.get("code") if isinstance(resource, dict) else None))
    if not own:
        return True
    for component in node.get("component") or ():
        if isinstance(component, dict) and any(c in own for c in _codings(component.get("code"))):
            return False
    return True


def _con_3(node: Any, resource: Any, root: Any) -> bool | None:
    # clinicalStatus.exists() or verificationStatus.coding.where(system = ver-status and
    # code = 'entered-in-error').exists() or category.select($this = 'problem-list-item').empty()
    # ($this is a CodeableConcept, never equal to a string: the last term is category.empty())
    return (_exists(node, "clinicalStatus") or _coded(node.get("verificationStatus"), VER_STATUS, _EIE)
            or not _exists(node, "category"))


def _con_4(node: Any, resource: Any, root: Any) -> bool | None:
    # abatement.empty() or clinicalStatus.coding.where(system = clinical and
    # (code = 'resolved' or code = 'remission' or code = 'inactive')).exists()
    return not _choice_exists(node, "abatement") or _coded(node.get("clinicalStatus"), CLINICAL, _NOT_ACTIVE)


def _con_5(node: Any, resource: Any, root: Any) -> bool | None:
    # verificationStatus.coding.where(system = ver-status and code = 'entered-in-error').empty()
    # or clinicalStatus.empty()
    return not _coded(node.get("verificationStatus"), VER_STATUS, _EIE) or not _exists(node, "clinicalStatus")


def _per_1(node: Any, resource: Any, root: Any) -> bool | None:
    # start.hasValue().not() or end.hasValue().not() or (start <= end)
    if not _has_value(node, "start") or not _has_value(node, "end"):
        return True
    start, end = node["start"], node["end"]
    if not isinstance(start, str) or not isinstance(end, str) or len(start) != len(end):
        return None
    # two dates of one precision (YYYY, YYYY-MM, YYYY-MM-DD), or two UTC instants written alike,
    # order as their text does; anything else (time zones, precisions) is fhirpathpy's to decide
    if "T" not in start and "T" not in end:
        return start <= end
    if start.endswith("Z") and end.endswith("Z") and start.find(".") == end.find("."):
        return start <= end
    return None


#: key -> (the R4 expression it stands for, the check); a constraint with that key but another
#: expression (a profile's own) is left to fhirpathpy
FAST_PATHS: Final[Mapping[str, tuple[str, Check]]] = {
    "cpt-2": ("value.empty() or system.exists()", _cpt_2),
    "qty-3": ("code.empty() or system.exists()", _qty_3),
    "att-1": ("data.empty() or contentType.exists()", _att_1),
    "prr-1": ("orderDetail.empty() or code.exists()", _prr_1),
    "pat-1": ("name.exists() or telecom.exists() or address.exists() or organization.exists()", _pat_1),
    "obs-6": ("dataAbsentReason.empty() or value.empty()", _obs_6),
    "obs-7": ("value.empty() or component.code.where(coding.intersect(%resource.code.coding).exists()).empty()",
              _obs_7),
    "con-3": ("clinicalStatus.exists() or verificationStatus.coding.where(system='" + VER_STATUS + "' and "
              "code = 'entered-in-error').exists() or category.select($this='problem-list-item').empty()", _con_3),
    "con-4": ("abatement.empty() or clinicalStatus.coding.where(system='" + CLINICAL + "' and "
              "(code='resolved' or code='remission' or code='inactive')).exists()", _con_4),
    "con-5": ("verificationStatus.coding.where(system='" + VER_STATUS + "' and code='entered-in-error').empty() "
              "or clinicalStatus.empty()", _con_5),
    "per-1": ("start.hasValue().not() or end.hasValue().not() or (start <= end)", _per_1),
}
