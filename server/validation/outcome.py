"""Validation issues and the OperationOutcome they make.

Every check in this package reports :class:`Finding` objects: a severity, a FHIR
issue-type code, a FHIRPath location (``Patient.identifier[0].system``) and a message.
They become OperationOutcome ``issue`` entries with :meth:`Finding.as_issue`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

Severity = Literal["fatal", "error", "warning", "information"]
BLOCKING: frozenset[str] = frozenset({"fatal", "error"})


@dataclass(frozen=True, slots=True)
class Finding:
    severity: Severity
    code: str
    expression: str
    diagnostics: str

    def as_issue(self) -> dict[str, Any]:
        return {"severity": self.severity, "code": self.code, "diagnostics": self.diagnostics,
                "expression": [self.expression]}


def error(code: str, expression: str, diagnostics: str) -> Finding:
    return Finding("error", code, expression, diagnostics)


def warning(code: str, expression: str, diagnostics: str) -> Finding:
    return Finding("warning", code, expression, diagnostics)


def has_errors(issues: Iterable[dict[str, Any]]) -> bool:
    return any(i.get("severity") in BLOCKING for i in issues)


def operation_outcome(issues: list[dict[str, Any]]) -> dict[str, Any]:
    """The OperationOutcome of a validation: its issues, or one ``information`` issue saying none."""
    if not issues:
        issues = [{"severity": "information", "code": "informational", "diagnostics": "no issues found"}]
    return {"resourceType": "OperationOutcome", "issue": issues}
