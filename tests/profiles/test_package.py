"""The carebridge FHIR package (profiles/carebridge/) as a FHIR tool would load it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhirpathpy import evaluate

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "profiles" / "carebridge"
UKCORE = ROOT / "profiles" / "ukcore"
R4 = ROOT / "profiles" / "r4"
BASE = "https://fhir.carebridge.example"

#: FHIR's cross-version extensions (http://hl7.org/fhir/6.0/StructureDefinition/extension-Patient.fetalStatus,
#: used by UK Core's Patient) are defined by rule, not published as StructureDefinitions in R4.
CROSS_VERSION = re.compile(r"^http://hl7\.org/fhir/[0-9]\.[0-9]/StructureDefinition/extension-[A-Za-z.]+$")

CANONICAL_KEYS = frozenset({"profile", "targetProfile", "valueSet", "baseDefinition", "answerValueSet",
                            "fixedCanonical", "system"})

FILES = sorted(p for p in PACKAGE.glob("*.json") if p.name not in ("package.json", ".index.json"))


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())  # type: ignore[no-any-return]


@cache
def known_canonicals() -> dict[str, str]:
    """Canonical URL -> where it is defined: this package, UK Core or R4."""
    found: dict[str, str] = {}
    listing = load(R4 / "canonicals.json")
    for kind in ("StructureDefinition", "ValueSet", "CodeSystem"):
        for url in listing[kind]:
            found[url] = "r4"
    for path in UKCORE.glob("*-*.json"):
        found[load(path)["url"]] = "ukcore"
    for path in FILES:
        resource = load(path)
        if "url" in resource:
            found[resource["url"]] = "carebridge"
    return found


def canonical_references(value: Any, key: str = "") -> list[str]:
    out: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(canonical_references(v, k))
    elif isinstance(value, list):
        for item in value:
            out.extend(canonical_references(item, key))
    elif (isinstance(value, str) and key in CANONICAL_KEYS
          and value.startswith(("http://hl7.org/fhir/", BASE, "https://fhir.hl7.org.uk/"))):
        out.append(value.split("|", 1)[0])
    return out


def test_package_manifest() -> None:
    manifest = load(PACKAGE / "package.json")
    assert manifest["name"] == "carebridge.fhir.r4"
    assert manifest["fhirVersions"] == ["4.0.1"]
    ukcore = load(UKCORE / "manifest.json")["package"]
    assert manifest["dependencies"] == {"hl7.fhir.r4.core": "4.0.1", ukcore["name"]: ukcore["version"]}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_file_parses_as_its_resource_type(path: Path) -> None:
    resource = load(path)
    assert path.name == f"{resource['resourceType']}-{resource['id']}.json"
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    if "url" in resource:
        assert resource["url"].startswith(BASE + "/")


@pytest.mark.parametrize("path", sorted(UKCORE.glob("*-*.json")), ids=lambda p: p.name)
def test_vendored_ukcore_parses(path: Path) -> None:
    resource = load(path)
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def test_index_agrees_with_the_files() -> None:
    index = load(PACKAGE / ".index.json")
    assert index["index-version"] == 1
    assert [e["filename"] for e in index["files"]] == [p.name for p in FILES]
    for entry in index["files"]:
        resource = load(PACKAGE / entry["filename"])
        for key in ("resourceType", "id", "url", "version", "kind", "type"):
            assert entry.get(key) == (resource.get(key) if isinstance(resource.get(key), str) else None), key
    script = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_package_index.py"), "--check"],
                            capture_output=True, text=True, check=False)
    assert script.returncode == 0, script.stderr


@pytest.mark.parametrize("path", [*FILES, *sorted(UKCORE.glob("*-*.json"))], ids=lambda p: p.name)
def test_every_canonical_reference_resolves(path: Path) -> None:
    known = known_canonicals()
    unresolved = sorted({url for url in canonical_references(load(path))
                         if url not in known and not CROSS_VERSION.match(url)})
    assert unresolved == []


def test_every_required_binding_has_its_value_set_and_code_systems() -> None:
    known = known_canonicals()
    own_code_systems = {load(p)["url"] for p in FILES if p.name.startswith("CodeSystem-")}
    value_sets = {load(p)["url"]: load(p) for p in FILES if p.name.startswith("ValueSet-")}
    checked = 0
    for path in FILES:
        resource = load(path)
        elements = [*resource.get("differential", {}).get("element", []),
                    *resource.get("snapshot", {}).get("element", [])]
        for element in elements:  # the snapshot brings the UK Core and R4 bindings the profile inherits
            binding = element.get("binding")
            if not binding or binding["strength"] != "required" or "valueSet" not in binding:
                continue
            url = binding["valueSet"].split("|", 1)[0]
            assert url in known, f"{path.name} {element['id']}: {url}"
            if url.startswith(BASE):
                for include in value_sets[url]["compose"]["include"]:
                    system = include["system"]
                    assert system in own_code_systems or known.get(system) == "r4", system
            checked += 1
    assert checked >= 30


def test_stream_code_system_has_the_seven_streams() -> None:
    codes = [c["code"] for c in load(PACKAGE / "CodeSystem-cap-stream.json")["concept"]]
    assert codes == ["ld", "amh", "camhs", "mhsop", "mhsop-memory", "specialist", "mixed"]


def test_referral_profile_references_the_triage_due_extension() -> None:
    sd = load(PACKAGE / "StructureDefinition-cap-referral.json")
    profiles = [p for e in sd["differential"]["element"] for t in e.get("type", []) for p in t.get("profile", [])]
    assert f"{BASE}/StructureDefinition/triage-due" in profiles
    assert load(PACKAGE / "StructureDefinition-triage-due.json")["context"] == [
        {"type": "element", "expression": "ServiceRequest"}]


def _nhs_invariant() -> str:
    sd = load(PACKAGE / "StructureDefinition-carebridge-patient.json")
    (element,) = [e for e in sd["differential"]["element"] if e["id"] == "Patient.identifier:nhsNumber"]
    (constraint,) = element["constraint"]
    return constraint["expression"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(("value", "valid"), [
    ("9434765919", True), ("9990000018", True), ("9434765918", False), ("0000000000", False),
    ("943476591", False), ("94347659190", False), ("943476591X", False),
])
def test_nhs_number_invariant(value: str, valid: bool) -> None:
    from server.fhir.nhs_number import check_digit

    assert evaluate({"value": value}, _nhs_invariant()) == [valid]
    if len(value) == 10 and value.isdigit() and value != "0000000000":
        assert (check_digit(value[:9]) == int(value[9])) is valid


def test_dialog_questionnaire_items() -> None:
    q = load(PACKAGE / "Questionnaire-dialog.json")
    groups = [i for i in q["item"] if i["type"] == "group"]
    assert [g["linkId"] for g in groups] == [f"dialog-{n}" for n in range(1, 12)]
    codes = {g["linkId"]: g["code"][0]["code"] for g in groups}
    assert codes["dialog-6"] == "1037701000000108" and "friendships" in groups[5]["text"]
    assert codes["dialog-7"] == "1037711000000105" and "partner" in groups[6]["text"]
    assert len(set(codes.values())) == 11
    for group in groups:
        rating, more_help = group["item"]
        assert [o["valueCoding"]["code"] for o in rating["answerOption"]] == [str(n) for n in range(1, 8)]
        assert more_help["type"] == "boolean"


def test_stream_search_parameter_is_registered() -> None:
    from server.definitions.search_parameters import default_registry

    param = default_registry()._by_type["ServiceRequest"]["stream"]
    assert param.url == f"{BASE}/SearchParameter/ServiceRequest-stream" and param.indexed
    referral = {"resourceType": "ServiceRequest", "category": [
        {"coding": [{"system": f"{BASE}/CodeSystem/cap-stream", "code": "camhs"}]},
        {"coding": [{"system": "http://snomed.info/sct", "code": "3457005"}]}]}
    assert param.extract(referral) == [referral["category"][0]]


def _questionnaire_invariant_failures(questionnaire: dict[str, Any]) -> list[str]:
    from fhirpathpy.models import models

    bundle = load(R4 / "structure-definitions.json")
    (sd,) = [e["resource"] for e in bundle["entry"] if e["resource"]["id"] == "Questionnaire"]
    failures = []
    for element in sd["snapshot"]["element"]:
        path = element["path"]
        nodes = [questionnaire] if path == "Questionnaire" else evaluate(
            questionnaire, path.replace("Questionnaire.item", "Questionnaire.repeat(item)", 1), model=models["r4"])
        for constraint in element.get("constraint", []):
            if not constraint["key"].startswith("que"):
                continue
            for node in nodes:
                if evaluate(node, constraint["expression"], {"resource": questionnaire},
                            model=models["r4"]) not in ([True], []):
                    failures.append(constraint["key"])
    return failures


def test_dialog_questionnaire_meets_the_r4_questionnaire_invariants() -> None:
    q = load(PACKAGE / "Questionnaire-dialog.json")
    assert _questionnaire_invariant_failures(q) == []
    q["item"][0]["item"][0]["answerValueSet"] = f"{BASE}/ValueSet/dialog-satisfaction"
    assert "que-4" in _questionnaire_invariant_failures(q)  # answerOption and answerValueSet together


EXAMPLES = sorted((PACKAGE / "example").glob("*.json"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_parses_and_claims_a_package_profile(path: Path) -> None:
    example = load(path)
    get_fhir_model_class(example["resourceType"]).model_validate(example)
    (claimed,) = example["meta"]["profile"]
    sd = load(PACKAGE / f"StructureDefinition-{claimed.rsplit('/', 1)[1]}.json")
    assert sd["type"] == example["resourceType"]
    # the profile's required top-level elements are present, and its fixed values hold
    for element in sd["snapshot"]["element"]:
        parts = element["id"].split(".")
        if len(parts) != 2 or ":" in element["id"]:
            continue
        name = parts[1].replace("[x]", "")
        present = [k for k in example if k == name or (parts[1].endswith("[x]") and k.startswith(name))]
        if element.get("min", 0) >= 1:
            assert present, f"{path.name}: {element['id']} is required by {claimed}"
        for key, value in element.items():
            if key.startswith("fixed") and present:
                assert example[present[0]] == value, f"{path.name}: {element['id']} must be {value}"


def test_examples_cover_every_resource_profile() -> None:
    claimed = {load(p)["meta"]["profile"][0] for p in EXAMPLES}
    profiles = {load(p)["url"] for p in FILES if load(p).get("kind") == "resource"}
    assert claimed == profiles


def test_patient_example_meets_the_nhs_number_invariant() -> None:
    patient = load(PACKAGE / "example" / "Patient-example-jane.json")
    (nhs,) = [i for i in patient["identifier"] if i["system"] == "https://fhir.nhs.uk/Id/nhs-number"]
    assert evaluate(nhs, _nhs_invariant()) == [True]


def test_dialog_example_answers_every_item() -> None:
    q = load(PACKAGE / "Questionnaire-dialog.json")
    qr = load(PACKAGE / "example" / "QuestionnaireResponse-example-dialog.json")
    assert qr["questionnaire"] == f"{q['url']}|{q['version']}"
    asked = [(g["linkId"], [i["linkId"] for i in g["item"]]) for g in q["item"] if g["type"] == "group"]
    answered = [(g["linkId"], [i["linkId"] for i in g["item"]]) for g in qr["item"]]
    assert answered == asked
