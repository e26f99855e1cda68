"""Lineage: the raw input kept as a DocumentReference, and a Provenance tying everything an
input wrote to that input and to the mapping version that wrote it."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from adapters.common.identity import stable_id

RAW_INPUT = "https://fhir.carebridge.example/Id/source-message"
MAPPING_BASE = "https://fhir.carebridge.example/mappings/"


def raw_document(raw: bytes, content_type: str, key: str, description: str, date: str | None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "identifier": [{"system": RAW_INPUT, "value": key}],
        "status": "current",
        "type": {"text": "source message"},
        "description": description,
        "content": [{"attachment": {"contentType": content_type, "data": base64.b64encode(raw).decode("ascii")}}],
    }
    if date:
        doc["date"] = date
    return doc


def provenance_id(key: str, raw: bytes, mapping_version: str) -> str:
    """Same input bytes through the same mapping: same Provenance."""
    return stable_id("provenance", key, hashlib.sha256(raw).hexdigest(), mapping_version)


def provenance(prov_id: str, key: str, mapping_version: str, targets: list[str], raw_ref: str, recorded: str,
               agent: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Provenance",
        "id": prov_id,
        "target": [{"reference": t} for t in targets],
        "recorded": recorded,
        "policy": [MAPPING_BASE + mapping_version],
        "activity": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                                 "code": "UPDATE"}]},
        "agent": [agent],
        "entity": [{"role": "source", "what": {"reference": raw_ref,
                                                "identifier": {"system": RAW_INPUT, "value": key}}}],
    }
