"""The Patient compartment (R4 CompartmentDefinition): which parameters of each resource
type put it in a patient's compartment. Consent and ``$everything`` both key on it."""

from __future__ import annotations

from functools import cache

import orjson

from carebridge import paths


@cache
def patient_compartment_params() -> dict[str, tuple[str, ...]]:
    """Resource type -> the search parameter codes that link it to a Patient."""
    data = orjson.loads((paths.R4_DEFINITIONS / "compartmentdefinition-patient.json").read_bytes())
    out: dict[str, tuple[str, ...]] = {}
    for entry in data.get("resource", []):
        params = tuple(p for p in entry.get("param", []) if p != "{def}")
        if params:
            out[entry["code"]] = params
    return out
