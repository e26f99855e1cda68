"""The R4 conformance extract (profiles/r4/canonicals.json, structure-definitions.json)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.profiles.vendoring import assert_matches_fresh_build

ROOT = Path(__file__).resolve().parents[2]
R4 = ROOT / "profiles" / "r4"


def test_structure_definitions_are_r4_snapshots_without_the_package_additions() -> None:
    bundle = json.loads((R4 / "structure-definitions.json").read_text())
    ids = {e["resource"]["id"] for e in bundle["entry"]}
    assert {"Patient", "ServiceRequest", "CarePlan", "Consent", "Extension", "Identifier", "code"} <= ids
    for entry in bundle["entry"]:
        sd = entry["resource"]
        assert sd["fhirVersion"] == "4.0.1" and "differential" not in sd
        paths = [e["path"] for e in sd["snapshot"]["element"]]
        assert paths[0] == sd["type"]
        assert not any(p.startswith("Meta.") and p.split(".")[1] in ("project", "author", "compartment")
                       for p in paths)


def test_canonicals_list_the_r4_definitions() -> None:
    listing = json.loads((R4 / "canonicals.json").read_text())
    assert "http://hl7.org/fhir/StructureDefinition/ordinalValue" in listing["StructureDefinition"]
    assert "http://hl7.org/fhir/ValueSet/request-priority" in listing["ValueSet"]
    assert "http://terminology.hl7.org/CodeSystem/v3-ActCode" in listing["CodeSystem"]
    for kind in ("StructureDefinition", "ValueSet", "CodeSystem"):
        assert listing[kind] == sorted(set(listing[kind]))


def test_vendored_files_match_a_fresh_build() -> None:
    assert_matches_fresh_build("vendor_r4_conformance")
