"""The search parameters the server indexes and answers, from the vendored R4 definitions.

Each (resource type, code) pair gets a :class:`SearchParam` with its FHIRPath compiled for
that type and a stable integer id (a CRC of the type and code) that index rows carry, so
that every worker and every database agrees on ids without a lookup table.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from carebridge import paths
from server.definitions.fhirpath import EXTRACTION_REVISION, Extractor, compile_expression

#: The resource types this server stores and serves.
RESOURCE_TYPES: tuple[str, ...] = (
    "Patient", "RelatedPerson", "Practitioner", "PractitionerRole", "Organization", "CareTeam",
    "ServiceRequest", "CarePlan", "Goal", "Condition", "Consent", "Questionnaire",
    "QuestionnaireResponse", "Observation", "Task", "Encounter", "EpisodeOfCare",
    "DocumentReference", "Provenance", "AuditEvent",
)

#: Parameters answered from the resource table or by the search engine itself, not indexed.
SPECIAL_CODES = frozenset({"_id", "_lastUpdated", "_content", "_text", "_query", "_list", "_has", "_type"})

INDEXED_TYPES = frozenset({"token", "string", "date", "number", "quantity", "reference", "uri"})


@dataclass(frozen=True)
class SearchParam:
    resource_type: str
    code: str
    type: str
    url: str
    expression: str | None
    targets: tuple[str, ...] = ()
    components: tuple[tuple[str, str], ...] = ()
    param_id: int = 0
    extract: Extractor = field(default=lambda _r: [], compare=False, repr=False)

    @property
    def indexed(self) -> bool:
        return self.type in INDEXED_TYPES and self.code not in SPECIAL_CODES and bool(self.expression)

    @property
    def index_table(self) -> str:
        return "number" if self.type == "quantity" else self.type

    @property
    def expression_hash(self) -> str:
        basis = f"{self.type}|{self.expression}|{EXTRACTION_REVISION}"
        return hashlib.sha256(basis.encode()).hexdigest()[:16]


def param_id(resource_type: str, code: str) -> int:
    return zlib.crc32(f"{resource_type}.{code}".encode()) & 0x7FFFFFFF


class SearchParameterRegistry:
    """Every search parameter by type and code, with the ones to index per type."""

    def __init__(self, definitions: Iterable[dict[str, Any]], resource_types: Iterable[str] = RESOURCE_TYPES):
        self.resource_types = tuple(resource_types)
        self._by_type: dict[str, dict[str, SearchParam]] = {t: {} for t in self.resource_types}
        self._by_id: dict[int, SearchParam] = {}
        for sp in definitions:
            self.add(sp)

    def add(self, definition: dict[str, Any]) -> None:
        """Register (or replace) a SearchParameter resource for each of its base types."""
        bases = definition.get("base") or []
        targets = [t for t in bases if t in self._by_type]
        if any(b in ("Resource", "DomainResource") for b in bases):
            targets = list(self.resource_types)
        for rtype in targets:
            expression = definition.get("expression")
            pid = param_id(rtype, definition["code"])
            other = self._by_id.get(pid)
            if other is not None and (other.resource_type, other.code) != (rtype, definition["code"]):
                raise RuntimeError(f"search parameter id clash: {rtype}.{definition['code']} and {other}")
            components = tuple(
                (c.get("definition", ""), c.get("expression", "")) for c in definition.get("component", [])
            )
            param = SearchParam(
                resource_type=rtype,
                code=definition["code"],
                type=definition["type"],
                url=definition.get("url", ""),
                expression=expression,
                targets=tuple(definition.get("target", ())),
                components=components,
                param_id=pid,
                extract=compile_expression(expression, rtype) if expression else (lambda _r: []),
            )
            self._by_type[rtype][param.code] = param
            self._by_id[pid] = param

    def get(self, resource_type: str, code: str) -> SearchParam | None:
        return self._by_type.get(resource_type, {}).get(code)

    def by_id(self, pid: int) -> SearchParam | None:
        return self._by_id.get(pid)

    def for_type(self, resource_type: str) -> list[SearchParam]:
        return list(self._by_type.get(resource_type, {}).values())

    @cache  # noqa: B019 - the registry lives as long as the process
    def indexed_for(self, resource_type: str) -> tuple[SearchParam, ...]:
        return tuple(p for p in self.for_type(resource_type) if p.indexed)

    def all_indexed(self) -> list[SearchParam]:
        return [p for t in self.resource_types for p in self.indexed_for(t)]


def load_bundle(path: Path) -> list[dict[str, Any]]:
    data = orjson.loads(path.read_bytes())
    resources = (e.get("resource", {}) for e in data.get("entry", []))
    return [r for r in resources if r.get("resourceType") == "SearchParameter"]


@cache
def default_registry() -> SearchParameterRegistry:
    """The R4 parameters plus the product's own from its FHIR package.

    The package (``profiles/carebridge/``) holds one conformance resource per file, as FHIR
    packages do; every ``SearchParameter-*.json`` there is registered on top of R4's.
    """
    definitions = load_bundle(paths.R4_DEFINITIONS / "search-parameters.json")
    for own in sorted((paths.PROFILES / "carebridge").glob("SearchParameter-*.json")):
        definitions.append(orjson.loads(own.read_bytes()))
    return SearchParameterRegistry(definitions)
