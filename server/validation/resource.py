"""The checks every resource passes before it is stored.

Three layers, cheapest first: the strict structure checker compiled from the R4 element
definitions (unknown elements, JSON types, cardinality, required bindings), the
fhir.resources models (a second, independent reading of the R4 structure), and the
product's business rules (NHS numbers pass modulus 11). Any error rejects the write as
422 with every issue located by a FHIRPath expression.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class

from server.fhir import nhs_number
from server.fhir.errors import Unprocessable


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
    issues = []
    rtype = res.get("resourceType", "")
    for i, ident in enumerate(res.get("identifier") or []):
        if isinstance(ident, dict) and ident.get("system") == nhs_number.NHS_NUMBER_SYSTEM:
            problem = nhs_number.problem(str(ident.get("value", "")))
            if problem:
                issues.append(_issue("value", f"{rtype}.identifier[{i}].value", problem))
    return issues


def _issue(code: str, expression: str, diagnostics: str) -> dict[str, Any]:
    return {"severity": "error", "code": code, "diagnostics": diagnostics, "expression": [expression]}


class ResourceValidator:
    """Runs every check; :meth:`validate` raises 422 with all issues found."""

    def __init__(self, structure: bool = True) -> None:
        self._structure = None
        if structure:
            try:
                from server.validation.structure import StructureValidator
            except ImportError:  # pragma: no cover - the structure checker ships with the server
                StructureValidator = None  # type: ignore[assignment,misc]
            if StructureValidator is not None:
                self._structure = StructureValidator()

    def issues(self, res: dict[str, Any]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        if self._structure is not None:
            for issue in self._structure.check(res):
                found.append({
                    "severity": issue.severity, "code": issue.code,
                    "diagnostics": issue.diagnostics, "expression": [issue.expression],
                })
        if not found:
            found = model_issues(res)
        found.extend(business_issues(res))
        return found

    def validate(self, res: dict[str, Any]) -> None:
        issues = [i for i in self.issues(res) if i["severity"] in ("error", "fatal")]
        if issues:
            first = issues[0]
            more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
            raise Unprocessable(
                f"{first['expression'][0]}: {first['diagnostics']}{more}",
                code=first["code"], expression=first["expression"], issues=issues[1:],
            )
