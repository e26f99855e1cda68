"""HL7's own R4 examples of every type the product serves pass base validation.

The examples are vendored byte for byte from the npm package ``hl7.fhir.r4.examples@4.0.1``
by ``scripts/vendor_r4_examples.py`` (see ``tests/data/r4-examples/README.md``). Base
validation is what every write runs: structure, fhir.resources, business rules, R4's
invariants, and the profiles an example claims that the server holds.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import cache
from pathlib import Path

import pytest

from server.validation.resource import ResourceValidator

DATA = Path(__file__).resolve().parents[1] / "data" / "r4-examples"
TYPES = ("Patient", "RelatedPerson", "Practitioner", "PractitionerRole", "Organization", "CareTeam",
         "ServiceRequest", "CarePlan", "Goal", "Condition", "Consent", "Questionnaire", "QuestionnaireResponse",
         "Observation", "Task", "Encounter", "EpisodeOfCare", "DocumentReference", "Provenance")
FILES = sorted(DATA.glob("*.json"))


@cache
def _validator() -> ResourceValidator:
    return ResourceValidator()


def test_every_served_type_has_examples() -> None:
    assert {p.name.split("-", 1)[0] for p in FILES} == set(TYPES)
    assert len(FILES) > 200


def test_the_files_are_the_ones_recorded() -> None:
    recorded = dict(re.findall(r"^- `([^`]+\.json)` ([0-9a-f]{64})$", (DATA / "README.md").read_text(), re.M))
    assert recorded == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in FILES}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_official_example_has_no_errors(path: Path) -> None:
    resource = json.loads(path.read_bytes())
    issues = _validator().issues(resource)
    assert [i for i in issues if i["severity"] in ("error", "fatal")] == []
    assert [i for i in issues if i["code"] == "processing"] == []  # every invariant evaluated


def test_a_broken_official_example_fails() -> None:
    """The check above can fail: an R4 invariant (per-1) broken in an official example."""
    resource = json.loads((DATA / "Encounter-example.json").read_bytes())
    resource["period"] = {"start": "2020-02-01", "end": "2020-01-01"}
    errors = [i for i in _validator().issues(resource) if i["severity"] == "error"]
    assert [(i["code"], i["expression"]) for i in errors] == [("invariant", ["Encounter.period"])]
