"""The checks every resource passes before it is stored, and ``$validate`` reports.

Layers, cheapest first: the strict structure checker compiled from the R4 element
definitions (unknown elements, JSON types, cardinality, required bindings), the
fhir.resources models (a second, independent reading of the R4 structure), the
product's business rules (NHS numbers pass modulus 11), then, on a structurally sound
resource, R4's invariants (:mod:`server.validation.invariants`) and the profiles that
apply (:mod:`server.validation.policy`, :mod:`server.validation.profile`), for the
resource and for every resource of a Bundle. Any error rejects the write as 422 with
every issue located by a FHIRPath expression; warnings do not block a write.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class

from server.fhir import nhs_number
from server.fhir.errors import Unprocessable
from server.validation import policy
from server.validation.outcome import Finding


@cache
def _model(resource_type: str) -> Any:
    try:
        return get_fhir_model_class(resource_type)
    except (KeyError, ValueError, AttributeError):
        return None


def _location(resource_type: str, loc: tuple[Any, ...]) -> str:
    out = resource_type
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("__root__",):
            continue
        else:
            out += f".{part}"
    return out


def model_issues(res: dict[str, Any]) -> list[dict[str, Any]]:
    rtype = res.get("resourceType", "")
    model = _model(rtype)
    if model is None:
        return [_issue("not-supported", rtype, f"unknown resource type {rtype!r}")]
    try:
        model.model_validate(res)
    except Exception as exc:  # pydantic.ValidationError, or fhir_core's own errors
        errors = getattr(exc, "errors", None)
        if not callable(errors):
            return [_issue("structure", rtype, str(exc).splitlines()[0])]
        issues = []
        for err in errors():
            loc = tuple(p for p in err.get("loc", ()) if not str(p).startswith("function-"))
            issues.append(_issue("structure", _location(rtype, loc), str(err.get("msg", "invalid"))))
        return issues
    return []


def business_issues(res: dict[str, Any]) -> list[dict[str, Any]]:
    issues: list[dict[str, Any]] = []
    rtype = res.get("resourceType", "")
    identifiers = res.get("identifier")
    if not isinstance(identifiers, list):  # a wrong shape is the structure check's to report
        return issues
    for i, ident in enumerate(identifiers):
        if isinstance(ident, dict) and ident.get("system") == nhs_number.NHS_NUMBER_SYSTEM:
            problem = nhs_number.problem(str(ident.get("value", "")))
            if problem:
                issues.append(_issue("value", f"{rtype}.identifier[{i}].value", problem))
    return issues


def _issue(code: str, expression: str, diagnostics: str) -> dict[str, Any]:
    return {"severity": "error", "code": code, "diagnostics": diagnostics, "expression": [expression]}


class ResourceValidator:
    """Runs every check; :meth:`validate` raises 422 with all the errors found.

    ``profiles=False`` leaves out R4's invariants and profile validation (the checks before
    them stay), for comparison in the benchmarks.
    """

    def __init__(self, structure: bool = True, profiles: bool = True) -> None:
        self._structure = None
        if structure:
            try:
                from server.validation.structure import StructureValidator
            except ImportError:  # pragma: no cover - the structure checker ships with the server
                StructureValidator = None  # type: ignore[assignment,misc]
            if StructureValidator is not None:
                self._structure = StructureValidator()
        self._profiles = profiles

    def warm(self) -> None:
        """Compile what the first write would otherwise compile (R4's invariants, the profiles
        held, each served type's model), so that a server's first request is not the one
        that waits several hundred milliseconds for it."""
        from server.definitions.search_parameters import RESOURCE_TYPES
        from server.validation.invariants import core_invariants
        from server.validation.profile import default_profiles

        if self._profiles:
            core_invariants()
            default_profiles()
        for rtype in RESOURCE_TYPES:
            _model(rtype)

    def issues(self, res: dict[str, Any], profiles: list[str] | None = None) -> list[dict[str, Any]]:
        """Every issue of ``res``: errors, warnings and information, as OperationOutcome issues.

        ``profiles`` are validated against besides those that apply anyway (claimed or
        required); asking for one the server does not hold is an error."""
        found: list[dict[str, Any]] = []
        if self._structure is not None:
            for issue in self._structure.check(res):
                found.append({
                    "severity": issue.severity, "code": issue.code,
                    "diagnostics": issue.diagnostics, "expression": [issue.expression],
                })
        if not found:
            found = model_issues(res)
        sound = not found  # the later checks walk the JSON as R4 shapes it
        found.extend(business_issues(res))
        if self._profiles and isinstance(res, dict) and sound:
            found.extend(f.as_issue() for f in self.profile_findings(res, profiles))
        elif profiles:
            found.extend(f.as_issue() for f in _unknown_requested(profiles))
        return found

    def profile_findings(self, res: dict[str, Any], requested: list[str] | None = None) -> list[Finding]:
        """R4's invariants on ``res`` (and all it contains), and the profiles of it and of each
        resource in it when it is a Bundle."""
        from server.validation.invariants import core_invariants

        found = core_invariants().check(res)
        found.extend(_unknown_requested(requested or []))
        self._profiled(res, str(res.get("resourceType")), requested or [], found)
        return found

    def _profiled(self, res: dict[str, Any], where: str, requested: list[str], found: list[Finding]) -> None:
        from server.validation.profile import default_profiles

        known = default_profiles()
        for url in policy.applicable(res, [u for u in requested if known.knows(u)]):
            compiled = known.get(url)
            if compiled is None:
                why = ("its snapshot cannot be generated here" if known.knows(url)
                       else "it is not known to this server")
                found.append(Finding("warning", "not-supported", f"{where}.meta.profile",
                                     f"profile {url} was not applied: {why}"))
                continue
            found.extend(known.validate(compiled, res, where))
        if res.get("resourceType") == "Bundle":
            for i, entry in enumerate(res.get("entry") or []):
                inner = entry.get("resource") if isinstance(entry, dict) else None
                if isinstance(inner, dict):
                    self._profiled(inner, f"{where}.entry[{i}].resource", [], found)

    def validate(self, res: dict[str, Any]) -> None:
        issues = [i for i in self.issues(res) if i["severity"] in ("error", "fatal")]
        if issues:
            first = issues[0]
            more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
            raise Unprocessable(
                f"{first['expression'][0]}: {first['diagnostics']}{more}",
                code=first["code"], expression=first["expression"], issues=issues[1:],
            )


def _unknown_requested(requested: list[str]) -> list[Finding]:
    from server.validation.profile import default_profiles

    known = default_profiles()
    return [Finding("error", "not-supported", "Parameters.profile", f"profile {url} is not known to this server")
            for url in requested if not known.knows(url)]
