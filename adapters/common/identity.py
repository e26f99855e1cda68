"""Business identifiers: the systems the store matches on, and the checks before a number is trusted."""

from __future__ import annotations

import uuid
from functools import lru_cache

from server.fhir.nhs_number import problem as nhs_number_problem

NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
ODS_ORGANIZATION = "https://fhir.nhs.uk/Id/ods-organization-code"
NAMESPACE = uuid.UUID("6f1d2c4e-6b0a-5c8e-9c3d-2b7a1e5f0c11")



def _nhs_number(value: str) -> str | None:
    if value.strip("0 ") == "":
        return f"NHS number {value!r} is all zeros"
    return nhs_number_problem(value)


#: named checks a mapping can ask for; each gives the reason a value is wrong, or None
CHECKS = {"nhs-number": _nhs_number}


@lru_cache(maxsize=65536)
def condition(resource_type: str, system: str, value: str) -> str:
    """The conditional URL that finds a resource by its business identifier."""
    from urllib.parse import quote

    return f"{resource_type}?identifier={quote(system, safe=':/')}|{quote(value, safe='')}"


def stable_id(*parts: str) -> str:
    """An id that is the same every time the same input is seen (for resources without identifiers)."""
    return str(uuid.uuid5(NAMESPACE, "\x1f".join(parts)))
