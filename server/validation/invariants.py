"""FHIRPath invariants: the R4 core ones of every type, and those a profile adds.

Each ``constraint`` is compiled once with fhirpathpy (R4 model) and evaluated on every
element it is defined on; ``severity`` error rejects, warning informs. An expression that
evaluates to ``false`` fails; ``true`` or empty (not enough data to decide) passes.

fhirpathpy lacks two functions that R4's expressions use, given here:
``hasValue()`` (a single primitive with a value) and ``htmlChecks()`` (R4's narrative
XHTML rules: always true here, the XHTML is not inspected). ``trace()`` is silenced.

Invariants not evaluated, each with its reason, are in :data:`NOT_EVALUATED`; the tests
check that every other R4 expression of the supported types compiles and that none of
them fails on HL7's examples. An expression that raises at run time gives a warning issue
saying so, never a crash and never a silent pass.

:class:`CoreInvariants` walks a resource along the R4 element table
(``profiles/r4/element-definitions.json``) so that a datatype's invariants (``per-1`` on
every Period, ``ref-1`` on every Reference) apply wherever the datatype appears, and
backbone elements get theirs (``pat-1`` on ``Patient.contact``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

import orjson
from fhirpathpy import compile as fhirpath_compile
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models as fhirpath_models

from carebridge import paths
from server.fhir import nhs_number
from server.validation.fast_invariants import FAST_PATHS
from server.validation.outcome import Finding

#: invariants deliberately not evaluated here, by key, with the reason
NOT_EVALUATED: Final[Mapping[str, str]] = {
    "ele-1": "checked by the structure checker: no empty objects, arrays or strings, every element has a value "
             "or children",
    "ext-1": "checked by the structure checker: an extension has a value[x] or nested extensions, not both",
}


def _local_references(value: Any, out: set[str]) -> None:
    if isinstance(value, dict):
        for item in value.values():
            _local_references(item, out)
    elif isinstance(value, list):
        for item in value:
            _local_references(item, out)
    elif isinstance(value, str) and value.startswith("#"):
        out.add(value)


def _dom_3(node: Any, resource: Any, root: Any) -> bool:
    contained = node.get("contained") if isinstance(node, dict) else None
    if not isinstance(contained, list):
        return True
    used: set[str] = set()
    _local_references(node, used)
    for item in contained:
        if not isinstance(item, dict):
            continue
        if f"#{item.get('id')}" in used:
            continue
        back: set[str] = set()
        _local_references(item, back)
        if "#" not in back:
            return False
    return True


_TEN_DIGITS: Final = re.compile(r"[0-9]{10}")


def _cb_nhs_1(node: Any, resource: Any, root: Any) -> bool:
    value = node.get("value") if isinstance(node, dict) else None
    if not isinstance(value, str):
        return True  # empty: `value.matches(...)` is empty, which passes
    if _TEN_DIGITS.fullmatch(value) is None or value == "0000000000":
        return False
    return nhs_number.check_digit(value[:9]) == int(value[9])


def _contained(node: Any) -> list[dict[str, Any]]:
    contained = node.get("contained") if isinstance(node, dict) else None
    return [c for c in contained if isinstance(c, dict)] if isinstance(contained, list) else []


def _dom_2(node: Any, resource: Any, root: Any) -> bool:
    return not any(c.get("contained") for c in _contained(node))


def _meta(resource: dict[str, Any]) -> dict[str, Any]:
    meta = resource.get("meta")
    return meta if isinstance(meta, dict) else {}


def _dom_4(node: Any, resource: Any, root: Any) -> bool:
    return not any("versionId" in _meta(c) or "lastUpdated" in _meta(c) for c in _contained(node))


def _dom_5(node: Any, resource: Any, root: Any) -> bool:
    return not any("security" in _meta(c) for c in _contained(node))


def _dom_6(node: Any, resource: Any, root: Any) -> bool:
    text = node.get("text") if isinstance(node, dict) else None
    return isinstance(text, dict) and "div" in text


def _ref_1(node: Any, resource: Any, root: Any) -> bool:
    reference = node.get("reference") if isinstance(node, dict) else None
    if not isinstance(reference, str) or not reference.startswith("#") or reference == "#":
        return True
    return reference[1:] in {c.get("id") for c in _contained(root)}


_NATIVE: Final[Mapping[str, Callable[[Any, Any, Any], bool]]] = {
    "dom-2": _dom_2, "dom-3": _dom_3, "dom-4": _dom_4, "dom-5": _dom_5, "dom-6": _dom_6, "ref-1": _ref_1,
    "cb-nhs-1": _cb_nhs_1,
}


#: R4 expressions that fhirpathpy reads differently from the specification, with the
#: equivalent expression run instead and why
REWRITTEN: Final[Mapping[str, tuple[str, str]]] = {
    "que-7": ("operator = 'exists' implies (answer is boolean)",
              "fhirpathpy takes 'Boolean' for System.Boolean only, which a FHIR boolean is not; 'boolean' names "
              "the FHIR type"),
    "rng-2": ("low.empty() or high.empty() or low.value.empty() or high.value.empty() or "
              "(low.code.exists() and high.code.exists() and low.code != high.code) or (low.value <= high.value)",
              "fhirpathpy compares only UCUM quantities; the values are compared when both bounds carry the same "
              "unit code (or none), and bounds in different units are not compared"),
}
#: invariants evaluated in Python rather than by fhirpathpy, with why
NATIVE_REASONS: Final[Mapping[str, str]] = {
    "dom-3": "fhirpathpy fails on R4's expression ('Expected singleton') for resources with several contained "
             "resources; the same rule (every contained resource is referenced from the resource, or refers to "
             "it with '#') is checked in Python",
    "dom-2": "fast path: runs on every resource written; a test checks it agrees with fhirpathpy on HL7's examples",
    "dom-4": "fast path, as dom-2",
    "dom-5": "fast path, as dom-2",
    "dom-6": "fast path, as dom-2",
    "ref-1": "fast path: runs on every Reference; a test checks it agrees with fhirpathpy on HL7's examples",
    **{key: "fast path (server/validation/fast_invariants.py): on the datatypes and resources nearly every write "
            "holds; a test checks it agrees with fhirpathpy" for key in FAST_PATHS},
    "cb-nhs-1": "the package's NHS number rule takes fhirpathpy about 6 ms (forty substring/toInteger calls); "
                "it runs as server.fhir.nhs_number's modulus 11 check, which a test shows agrees with the "
                "FHIRPath on valid and invalid numbers",
}
#: invariants not evaluated at all (beyond :data:`NOT_EVALUATED`'s structural ones), with why
UNSUPPORTED: Final[Mapping[str, str]] = {
    "ctm-1": "needs resolve() of the member reference, which fhirpathpy does not implement and validation does "
             "not do (it reads no other resource)",
}


def _has_value(inputs: list[Any]) -> bool:
    return len(inputs) == 1 and inputs[0] is not None and not isinstance(inputs[0], dict | list)


def _html_checks(inputs: list[Any]) -> bool:
    return True


_OPTIONS: Final = {
    "userInvocationTable": {"hasValue": {"fn": _has_value}, "htmlChecks": {"fn": _html_checks}},
    "traceFn": lambda label, value: None,
}
_MODEL: Final = fhirpath_models["r4"]


@dataclass(eq=False)
class Invariant:
    key: str
    severity: str
    human: str
    expression: str
    #: why it is not evaluated (then ``run`` is None)
    skipped: str | None = None
    run: Callable[..., list[Any]] | None = None
    #: the Python check: True passes, False fails, None leaves the case to ``run``
    native: Callable[[Any, Any, Any], bool | None] | None = None

    @property
    def evaluated(self) -> bool:
        return self.run is not None or self.native is not None

    def check(self, node: Any, type_path: str, resource: Any, where: str, root: Any = None) -> Finding | None:
        """A finding when the invariant fails on ``node`` (or cannot be evaluated), else None.

        ``resource`` is ``%resource`` (the resource holding the element), ``root`` is
        ``%rootResource`` (its container, for a contained resource; else itself)."""
        decided = self.native(node, resource, root if root is not None else resource) if self.native else None
        if decided is not None:
            result: list[Any] = [decided]
        elif self.run is None:
            return None
        else:
            try:
                result = self.run(ResourceNode.create_node(node, type_path),
                                  {"resource": resource, "rootResource": root if root is not None else resource})
            except Exception as exc:  # fhirpathpy raises plain Exceptions for what it does not implement
                return Finding("warning", "processing", where,
                               f"invariant {self.key} could not be evaluated ({str(exc)[:120]}); it was not checked")
        if result == [False] or (len(result) == 1 and result[0] is False):
            severity = "error" if self.severity == "error" else "warning"
            return Finding(severity, "invariant", where, f"{self.key}: {self.human}")  # type: ignore[arg-type]
        return None


@cache
def compile_invariant(key: str, severity: str, human: str, expression: str) -> Invariant:
    """The compiled invariant (shared by every element that has the same one)."""
    reason = NOT_EVALUATED.get(key) or UNSUPPORTED.get(key)
    if reason is not None:
        return Invariant(key, severity, human, expression, skipped=reason)
    if key in _NATIVE:
        return Invariant(key, severity, human, expression, native=_NATIVE[key])
    if key in REWRITTEN:
        expression = REWRITTEN[key][0]
    try:
        run = fhirpath_compile(expression, _MODEL, _OPTIONS)
    except Exception as exc:
        return Invariant(key, severity, human, expression, skipped=f"fhirpathpy cannot parse it: {exc}")
    fast = FAST_PATHS.get(key)
    if fast is not None and fast[0] == expression:
        # fhirpathpy stays for the cases the fast path leaves undecided
        return Invariant(key, severity, human, expression, run=run, native=fast[1])
    return Invariant(key, severity, human, expression, run=run)


def from_constraint(constraint: Mapping[str, Any]) -> Invariant | None:
    expression = constraint.get("expression")
    if not isinstance(expression, str) or not expression:
        return None
    return compile_invariant(str(constraint.get("key", "")), str(constraint.get("severity", "error")),
                             str(constraint.get("human", "")), expression)


# -- the R4 core invariants, walked along the element table ---------------------------------

_NESTED: Final = frozenset({"BackboneElement", "Element"})


@dataclass(eq=False)
class _Slot:
    """Where a JSON property leads: a nested element of the same type, a datatype, a resource."""

    type_name: str | None  # None: a backbone element of the owner type at ``relative``
    relative: str
    resource: bool = False


class CoreInvariants:
    """Applies the R4 invariants of every type to a resource and everything in it."""

    def __init__(self) -> None:
        table = orjson.loads((paths.R4_DEFINITIONS / "element-definitions.json").read_bytes())
        rows = orjson.loads((paths.R4_DEFINITIONS / "constraints.json").read_bytes())["types"]
        self.primitives = frozenset(table["primitives"])
        self.invariants: dict[tuple[str, str], list[Invariant]] = {}
        for type_name, constraints in rows.items():
            for row in constraints:
                invariant = compile_invariant(row["key"], row["severity"], row["human"], row["expression"])
                if not invariant.evaluated:
                    continue
                relative = row["path"].partition(".")[2]
                self.invariants.setdefault((type_name, relative), []).append(invariant)
        # the resources' own invariants include those of DomainResource (dom-*), already in their rows
        self.slots: dict[tuple[str, str], dict[str, _Slot]] = {}
        for section in ("resources", "datatypes"):
            for type_name, elements in table[section].items():
                for relative, spec in elements.items():
                    parent, _, name = relative.rpartition(".")
                    owner = self.slots.setdefault((type_name, parent), {})
                    types: list[str] = spec["types"]
                    variants = ([(name[:-3] + t[0].upper() + t[1:], t) for t in types] if name.endswith("[x]")
                                else [(name, types[0])])
                    for key, type_code in variants:
                        if type_code in self.primitives:
                            continue
                        if "ref" in spec:
                            owner[key] = _Slot(None, spec["ref"])
                        elif type_code in _NESTED:
                            owner[key] = _Slot(None, relative)
                        elif type_code == "Resource":
                            owner[key] = _Slot(None, "", resource=True)
                        else:
                            owner[key] = _Slot(spec.get("profiles", {}).get(type_code, type_code), "")
        self.resource_types = frozenset(table["resources"])
        self._relevant = self._compute_relevance()

    def _compute_relevance(self) -> set[tuple[str, str]]:
        """The elements at or below which some invariant applies (walks skip the others)."""
        relevant = set(self.invariants)
        changed = True
        while changed:
            changed = False
            for key, slots in self.slots.items():
                if key in relevant:
                    continue
                for slot in slots.values():
                    target = (key[0], slot.relative) if slot.type_name is None else (slot.type_name, "")
                    if slot.resource or target in relevant:
                        relevant.add(key)
                        changed = True
                        break
        return relevant

    def _has_work(self, type_name: str, relative: str) -> bool:
        return (type_name, relative) in self._relevant

    def check(self, resource: dict[str, Any], where: str | None = None) -> list[Finding]:
        found: list[Finding] = []
        self._resource(resource, where, found)
        return found

    def _resource(self, resource: Any, where: str | None, found: list[Finding], root: Any = None) -> None:
        if not isinstance(resource, dict):
            return
        rtype = resource.get("resourceType")
        if not isinstance(rtype, str) or rtype not in self.resource_types:
            return
        self._node(resource, rtype, "", where or rtype, resource, root if root is not None else resource, found)

    def _node(self, node: dict[str, Any], type_name: str, relative: str, where: str, resource: dict[str, Any],
              root: dict[str, Any], found: list[Finding]) -> None:
        for invariant in self.invariants.get((type_name, relative), ()):
            if invariant.key == "dom-6" and root is not resource:
                continue  # a contained resource is described by its container's narrative
            type_path = f"{type_name}.{relative}" if relative else type_name
            finding = invariant.check(node, type_path, resource, where, root)
            if finding is not None:
                found.append(finding)
        slots = self.slots.get((type_name, relative))
        if not slots:
            return
        for key, value in node.items():
            slot = slots.get(key)
            if slot is None:
                continue
            items = value if isinstance(value, list) else [value]
            indexed = isinstance(value, list)
            for i, item in enumerate(items):
                if not isinstance(item, dict):
                    continue
                at = f"{where}.{key}[{i}]" if indexed else f"{where}.{key}"
                if slot.resource:
                    self._resource(item, at, found, root if key == "contained" else None)
                elif slot.type_name is None:
                    if self._has_work(type_name, slot.relative):
                        self._node(item, type_name, slot.relative, at, resource, root, found)
                elif self._has_work(slot.type_name, ""):
                    self._node(item, slot.type_name, "", at, resource, root, found)


@cache
def core_invariants() -> CoreInvariants:
    return CoreInvariants()


def r4_keys() -> frozenset[str]:
    """Every invariant key R4 defines on the types held here (a profile's copies are not re-run)."""
    return _r4_keys()


@cache
def _r4_keys() -> frozenset[str]:
    rows = orjson.loads((paths.R4_DEFINITIONS / "constraints.json").read_bytes())["types"]
    return frozenset(row["key"] for constraints in rows.values() for row in constraints)
