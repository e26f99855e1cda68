"""The product's FHIR package (``profiles/carebridge/``), loaded once, read-only.

Conformance resources (StructureDefinition, ValueSet, CodeSystem, SearchParameter) are
served from the package, not from the store: they change with a release of the product,
never through the API, so the store does not hold them and writes to them are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from carebridge import paths

#: Resource types answered from the package rather than the store.
CONFORMANCE_TYPES: tuple[str, ...] = ("StructureDefinition", "ValueSet", "CodeSystem", "SearchParameter")
#: Search parameters the package answers for each of them.
SEARCH_CODES: tuple[str, ...] = ("_id", "url", "name", "version", "status")
SEARCH_DEFINITIONS = {
    "_id": "http://hl7.org/fhir/SearchParameter/Resource-id",
    "url": "http://hl7.org/fhir/SearchParameter/conformance-url",
    "name": "http://hl7.org/fhir/SearchParameter/conformance-name",
    "version": "http://hl7.org/fhir/SearchParameter/conformance-version",
    "status": "http://hl7.org/fhir/SearchParameter/conformance-status",
}
SEARCH_TYPES = {"_id": "token", "url": "uri", "name": "string", "version": "token", "status": "token"}


@dataclass(frozen=True)
class PackageFile:
    filename: str
    resource: dict[str, Any]
    content: bytes

    @property
    def resource_type(self) -> str:
        return str(self.resource["resourceType"])

    @property
    def id(self) -> str:
        return str(self.resource["id"])

    @property
    def page(self) -> str:
        """The name of the file's page under /profiles."""
        return self.filename.removesuffix(".json")


class Package:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.manifest: dict[str, Any] = orjson.loads((folder / "package.json").read_bytes())
        self.files: list[PackageFile] = []
        for path in sorted(folder.glob("*-*.json")):
            raw = path.read_bytes()
            self.files.append(PackageFile(path.name, orjson.loads(raw), raw))
        self._by_key = {(f.resource_type, f.id): f for f in self.files}
        self._by_page = {f.page: f for f in self.files}

    def get(self, resource_type: str, id: str) -> PackageFile | None:
        return self._by_key.get((resource_type, id))

    def by_page(self, page: str) -> PackageFile | None:
        return self._by_page.get(page)

    def of_type(self, resource_type: str) -> list[PackageFile]:
        return [f for f in self.files if f.resource_type == resource_type]

    def search(self, resource_type: str, params: list[tuple[str, str]]) -> list[PackageFile]:
        """Files of the type matching every parameter (a comma in a value is OR)."""
        found = self.of_type(resource_type)
        for code, value in params:
            wanted = value.split(",")
            found = [f for f in found if _matches(f.resource, code, wanted)]
        return found


def _matches(resource: dict[str, Any], code: str, wanted: list[str]) -> bool:
    name = code.split(":", 1)[0]
    value = resource.get("id" if name == "_id" else name)
    if not isinstance(value, str):
        return False
    if name == "url":
        return any(value == w.split("|", 1)[0] and ("|" not in w or resource.get("version") == w.split("|", 1)[1])
                   for w in wanted)
    if name == "name":
        if code.endswith(":exact"):
            return value in wanted
        return any(value.lower().startswith(w.lower()) for w in wanted)
    return value in wanted


@cache
def default_package() -> Package:
    return Package(paths.PROFILES / "carebridge")
