"""Snapshot generation (server/validation/snapshot.py) and the committed snapshots of the package."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from server.validation.snapshot import Generator, SnapshotError, known_definitions, package_snapshots

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "profiles" / "carebridge"
SDS = sorted(PACKAGE.glob("StructureDefinition-*.json"))


def by_id(elements: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["id"]: e for e in elements}


def test_committed_snapshots_match_a_regeneration() -> None:
    committed = {json.loads(p.read_text())["url"]: json.loads(p.read_text()) for p in SDS}
    regenerated = package_snapshots(committed.values())
    for url, sd in committed.items():
        assert sd["snapshot"]["element"] == regenerated[url], f"{url}: run python scripts/build_snapshots.py"


@pytest.mark.parametrize("path", SDS, ids=lambda p: p.name)
def test_every_differential_element_is_in_the_snapshot_with_its_constraints(path: Path) -> None:
    sd = json.loads(path.read_text())
    snapshot = by_id(sd["snapshot"]["element"])
    paths = [e["path"] for e in sd["snapshot"]["element"]]
    assert paths[0] == sd["type"] and all(p == sd["type"] or p.startswith(sd["type"] + ".") for p in paths)
    for diff in sd["differential"]["element"]:
        element = snapshot[diff["id"]]
        for key, value in diff.items():
            if key == "constraint":
                assert {c["key"] for c in value} <= {c["key"] for c in element["constraint"]}
            else:
                assert element[key] == value, (diff["id"], key)


def test_patient_snapshot_carries_ukcore_and_own_constraints() -> None:
    sd = json.loads((PACKAGE / "StructureDefinition-carebridge-patient.json").read_text())
    elements = by_id(sd["snapshot"]["element"])
    nhs = "Patient.identifier:nhsNumber"
    assert elements[nhs + ".system"]["fixedUri"] == "https://fhir.nhs.uk/Id/nhs-number"  # from UK Core
    assert elements[nhs + ".value"]["min"] == 1  # ours
    assert "cb-nhs-1" in {c["key"] for c in elements[nhs]["constraint"]}
    assert "ele-1" in {c["key"] for c in elements[nhs]["constraint"]}  # R4's
    assert elements["Patient.identifier"]["slicing"]["discriminator"]
    assert elements["Patient.generalPractitioner.identifier.system"]["fixedUri"] == \
        "https://fhir.nhs.uk/Id/ods-organization-code"
    # the slice and its children sit after the sliced element, before the next element of Patient
    ids = [e["id"] for e in sd["snapshot"]["element"]]
    assert ids.index("Patient.identifier") < ids.index(nhs) < ids.index(nhs + ".value") < ids.index("Patient.active")


def test_extension_slice_gets_default_slicing() -> None:
    sd = json.loads((PACKAGE / "StructureDefinition-cap-referral.json").read_text())
    elements = by_id(sd["snapshot"]["element"])
    assert elements["ServiceRequest.extension"]["slicing"]["discriminator"] == [{"type": "value", "path": "url"}]
    assert elements["ServiceRequest.extension:triageDue"]["type"][0]["profile"] == [
        "https://fhir.carebridge.example/StructureDefinition/triage-due"]


def test_unknown_element_is_an_error() -> None:
    sd = copy.deepcopy(json.loads((PACKAGE / "StructureDefinition-carer.json").read_text()))
    sd["differential"]["element"].append({"id": "RelatedPerson.nonsense", "path": "RelatedPerson.nonsense"})
    with pytest.raises(SnapshotError):
        Generator(known_definitions().get).generate(sd)


def test_slice_of_an_unsliced_element_is_an_error() -> None:
    sd = copy.deepcopy(json.loads((PACKAGE / "StructureDefinition-carer.json").read_text()))
    sd["differential"]["element"].append({"id": "RelatedPerson.name:other", "path": "RelatedPerson.name",
                                          "sliceName": "other"})
    with pytest.raises(SnapshotError):
        Generator(known_definitions().get).generate(sd)


def test_missing_base_is_an_error() -> None:
    sd = {"url": "https://example.org/x", "baseDefinition": "https://example.org/none", "derivation": "constraint",
          "differential": {"element": []}}
    with pytest.raises(SnapshotError):
        Generator(known_definitions().get).generate(sd)
