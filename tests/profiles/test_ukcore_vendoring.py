"""The vendored UK Core (profiles/ukcore/) and the script that makes it."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
UKCORE = ROOT / "profiles" / "ukcore"
MIRROR = Path("/work/.mirror/NHSDigital+FHIR-R4-UKCORE-STAGING-MAIN/repo")


def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vendor_ukcore", ROOT / "scripts" / "vendor_ukcore.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["vendor_ukcore"] = module
    spec.loader.exec_module(module)
    return module


def converter():  # type: ignore[no-untyped-def]
    module = script()
    return module, module.Converter(json.loads((ROOT / "profiles" / "r4" / "element-definitions.json").read_text()))


def test_manifest_matches_the_files() -> None:
    manifest = json.loads((UKCORE / "manifest.json").read_text())
    assert len(manifest["commit"]) == 40
    files = sorted(p.name for p in UKCORE.glob("*-*.json"))
    assert files == sorted(manifest["files"])
    for name, entry in manifest["files"].items():
        data = (UKCORE / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], name
        resource = json.loads(data)
        assert resource["url"] == entry["url"] and resource["resourceType"] == entry["resourceType"]
    for seed in manifest["seeds"]:
        assert seed in {e["url"] for e in manifest["files"].values()}


def test_xml_to_json_follows_the_r4_json_rules() -> None:
    module, conv = converter()
    xml = """<CodeSystem xmlns="http://hl7.org/fhir">
      <id value="x"/><url value="https://example.org/cs"/><status value="active"/>
      <experimental value="false"/><caseSensitive value="true"/><content value="complete"/><count value="2"/>
      <text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml"><p>two</p></div></text>
      <contact><telecom><system value="email"/><value value="a@b.c"/></telecom></contact>
      <concept><code value="01"/><display value="One"/></concept>
      <concept><code value="02"><extension url="https://example.org/e"><valueInteger value="7"/></extension></code>
      </concept>
    </CodeSystem>"""
    out = module.tidy(conv.resource(ET.fromstring(xml)))
    assert out["resourceType"] == "CodeSystem" and list(out)[1] == "id"
    assert out["experimental"] is False and out["caseSensitive"] is True and out["count"] == 2
    assert out["contact"] == [{"telecom": [{"system": "email", "value": "a@b.c"}]}]
    assert out["concept"][0] == {"code": "01", "display": "One"}  # leading zero kept: codes are strings
    assert out["concept"][1]["_code"] == {"extension": [{"url": "https://example.org/e", "valueInteger": 7}]}
    assert out["text"]["div"].startswith('<div xmlns="http://www.w3.org/1999/xhtml">')


def test_unknown_element_is_refused() -> None:
    module, conv = converter()
    with pytest.raises(module.VendorError):
        conv.resource(ET.fromstring('<ValueSet xmlns="http://hl7.org/fhir"><colour value="red"/></ValueSet>'))


@pytest.mark.skipif(not MIRROR.is_dir(), reason=f"no UK Core mirror at {MIRROR} to regenerate from")
def test_regenerating_from_the_source_commit_gives_the_same_files(tmp_path: Path) -> None:
    manifest = json.loads((UKCORE / "manifest.json").read_text())
    assert script().main([str(MIRROR), "--commit", manifest["commit"], "--out", str(tmp_path)]) == 0
    for path in sorted(UKCORE.glob("*.json")):
        assert (tmp_path / path.name).read_bytes() == path.read_bytes(), path.name
