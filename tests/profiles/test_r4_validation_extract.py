"""The R4 extracts the profile validator reads (profiles/r4/constraints.json, terminology.json)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.profiles.vendoring import assert_matches_fresh_build

ROOT = Path(__file__).resolve().parents[2]
R4 = ROOT / "profiles" / "r4"


def test_constraints_cover_every_type_of_the_element_table() -> None:
    table = json.loads((R4 / "element-definitions.json").read_text())
    types = json.loads((R4 / "constraints.json").read_text())["types"]
    assert set(table["resources"]) | set(table["datatypes"]) <= set(types)
    assert {"per-1", "ref-1"} <= {row["key"] for row in types["Period"] + types["Reference"]}


def test_terminology_holds_what_bindings_reach() -> None:
    bundle = json.loads((R4 / "terminology.json").read_text())
    urls = {e["resource"]["url"] for e in bundle["entry"]}
    assert {"http://hl7.org/fhir/ValueSet/identifier-type", "http://terminology.hl7.org/CodeSystem/v2-0203",
            "http://hl7.org/fhir/ValueSet/consent-policy", "http://terminology.hl7.org/CodeSystem/v3-RoleCode"} <= urls


def test_vendored_files_match_a_fresh_build() -> None:
    assert_matches_fresh_build("vendor_r4_validation")
