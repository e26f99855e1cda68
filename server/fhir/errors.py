"""Errors that carry their FHIR meaning: an HTTP status and an OperationOutcome.

Every layer raises :class:`FhirError` (or a subclass); the API turns it into a response.
Messages must never name a resource the caller may not see, so code that hides a
resource raises :class:`NotFound` with the same words a missing one would get.
"""

from __future__ import annotations

from typing import Any


class FhirError(Exception):
    """A request that cannot be served, with the status and OperationOutcome to answer."""

    status: int = 400
    code: str = "invalid"

    def __init__(
        self,
        diagnostics: str,
        *,
        status: int | None = None,
        code: str | None = None,
        expression: list[str] | None = None,
        issues: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(diagnostics)
        self.diagnostics = diagnostics
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.expression = expression
        self.extra_issues = issues or []
        self.headers = headers or {}

    def issues(self) -> list[dict[str, Any]]:
        first: dict[str, Any] = {"severity": "error", "code": self.code, "diagnostics": self.diagnostics}
        if self.expression:
            first["expression"] = self.expression
        return [first, *self.extra_issues]

    def outcome(self) -> dict[str, Any]:
        return operation_outcome(self.issues())


class BadRequest(FhirError):
    status, code = 400, "invalid"


class Unauthorized(FhirError):
    status, code = 401, "login"


class Forbidden(FhirError):
    status, code = 403, "forbidden"


class NotFound(FhirError):
    status, code = 404, "not-found"


class MethodNotAllowed(FhirError):
    status, code = 405, "not-supported"


class NotAcceptable(FhirError):
    status, code = 406, "not-supported"


class Conflict(FhirError):
    status, code = 409, "conflict"


class Gone(FhirError):
    status, code = 410, "deleted"


class PreconditionFailed(FhirError):
    status, code = 412, "conflict"


class UnsupportedMediaType(FhirError):
    status, code = 415, "not-supported"


class Unprocessable(FhirError):
    """Valid JSON, but not content this server accepts (FHIR rules, profiles, business rules)."""

    status, code = 422, "processing"


def operation_outcome(issues: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": issues}


def information(diagnostics: str, code: str = "informational") -> dict[str, Any]:
    return operation_outcome([{"severity": "information", "code": code, "diagnostics": diagnostics}])
