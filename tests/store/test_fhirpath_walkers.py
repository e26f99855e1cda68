"""The compiled search-expression walkers select what the general FHIRPath engine selects.

Every indexed search parameter of every served type is run both ways over HL7's R4 examples,
the demo data and mapped GP referrals; the walkers exist only to be faster, so any
difference is a wrong index row."""

from __future__ import annotations

import json
from collections import defaultdict
from decimal import Decimal
from functools import cache
from typing import Any

import pytest

from adapters.gp_referral.convert import convert
from adapters.gp_referral.mapping import load
from carebridge import paths
from server.definitions.fhirpath import compile_expression, compile_general
from server.definitions.search_parameters import RESOURCE_TYPES, default_registry
from tests.adapters.gp_referral.gp_samples import referral

EXAMPLES = paths.ROOT / "tests" / "data" / "r4-examples"
DEMO = paths.ROOT / "carebridge" / "demo" / "demo-bundle.json"


def _resources() -> dict[str, list[dict[str, Any]]]:
    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def add(res: dict[str, Any]) -> None:
        by_type[res["resourceType"]].append(res)
        for entry in res.get("entry") or []:
            if isinstance(entry.get("resource"), dict):
                add(entry["resource"])
        for inner in res.get("contained") or []:
            add(inner)

    for path in sorted(EXAMPLES.glob("*.json")):
        add(json.loads(path.read_text()))
    add(json.loads(DEMO.read_text()))
    mapping = load()
    for res in EDGES:
        add(res)
    for raw in (referral("R1"), referral("R2", priority="U", reason="Voices"), referral("R3", trigger="I14")):
        converted = convert(raw, mapping)
        if converted.bundle is not None:
            add(converted.bundle)
    return by_type


#: resources that exercise what the walkers once got wrong, and a type HL7 has no example of here
EDGES: list[dict[str, Any]] = [
    # no performer, but performerType: not a choice element, so not ServiceRequest.performer
    {"resourceType": "ServiceRequest", "id": "performer-type", "status": "active", "intent": "order",
     "subject": {"reference": "Patient/p1"}, "performerType": {"text": "Nurse"}},
    # a category with the stream coding beside another: coding.system is then two values
    {"resourceType": "ServiceRequest", "id": "two-codings", "status": "active", "intent": "order",
     "subject": {"reference": "Patient/p1"},
     "category": [{"coding": [{"system": "https://fhir.carebridge.example/CodeSystem/cap-stream", "code": "adult"},
                              {"system": "http://snomed.info/sct", "code": "306206005"}]},
                  {"coding": [{"system": "https://fhir.carebridge.example/CodeSystem/cap-stream", "code": "crisis"}]}],
     "extension": [{"url": "https://fhir.carebridge.example/StructureDefinition/triage-due",
                    "valueDateTime": "2024-03-01T13:00:00+00:00"},
                   {"url": "http://example.org/other", "valueString": "x"}]},
    {"resourceType": "Observation", "id": "value-text", "status": "final", "code": {"text": "mood"},
     "valueCodeableConcept": {"text": "low"}},
    {"resourceType": "Observation", "id": "value-string", "status": "final", "code": {"text": "note"},
     "valueString": "sleeping badly", "component": [{"code": {"text": "a"}, "valueString": "b"}]},
    # a primitive with an extension of its own ("_birthDate"), which R4 paths never index
    {"resourceType": "Patient", "id": "birth-extension", "birthDate": "1980-02-14",
     "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                                   "valueDateTime": "1980-02-14T09:30:00Z"}]}},
    {"resourceType": "AuditEvent", "id": "read", "type": {"system": "http://dicom.nema.org/resources/ontology/DCM",
                                                         "code": "110110"},
     "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": "read"}], "action": "R",
     "recorded": "2026-12-06T21:00:00.000Z", "outcome": "0",
     "agent": [{"who": {"reference": "Practitioner/pr1", "identifier": {"system": "urn:x", "value": "1"}},
                "requestor": True, "network": {"address": "127.0.0.1", "type": "2"},
                "altId": "gp-c82001", "policy": ["urn:policy"]}],
     "source": {"observer": {"display": "carebridge"}, "site": "RT5"},
     "entity": [{"what": {"reference": "Patient/p1"}, "type": {"code": "1"}, "role": {"code": "1"}}]},
]


@cache
def corpus() -> dict[str, list[dict[str, Any]]]:
    return _resources()


def _selected(values: list[Any]) -> set[str]:
    """What the index is built from: the distinct values (FHIRPath's ``|`` drops repeats, the
    walker's union may not, and index rows are a set either way), as canonical JSON.
    fhirpathpy hands back some primitives as its own types, compared by their text."""
    def plain(value: Any) -> Any:
        return value if isinstance(value, (dict, list, bool, int, float)) or value is None else str(value)
    return {json.dumps(plain(v), sort_keys=True, default=_number) for v in values}


def _number(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else str(value)


#: every indexed parameter but those filtering by ``resolve()``, which fhirpathpy cannot resolve
#: without a server (their walker step is covered by the reference search tests)
CASES = [(rtype, p.code) for rtype in sorted(RESOURCE_TYPES)
         for p in default_registry().indexed_for(rtype) if p.expression and "resolve()" not in p.expression]


@pytest.mark.parametrize(("rtype", "code"), CASES, ids=[f"{t}.{c}" for t, c in CASES])
def test_the_walker_selects_what_fhirpath_selects(rtype: str, code: str) -> None:
    param = default_registry().get(rtype, code)
    assert param is not None
    fast = compile_expression(param.expression, rtype)
    general = compile_general(param.expression, rtype)
    examples = corpus().get(rtype, [])
    assert examples, f"nothing to compare {rtype} on"
    for res in examples:
        assert _selected(fast(res)) == _selected(general(res)), f"{rtype}/{res.get('id')} {code}: {param.expression}"
