"""Runs every indexed search parameter of a resource's type over it, once per write."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from server.consent.rules import consent_rows
from server.definitions.compartment import patient_compartment_params
from server.definitions.search_parameters import SearchParameterRegistry
from server.store.indexing import values

if TYPE_CHECKING:
    from server.consent.rules import ConsentRows


@dataclass
class IndexRows:
    """Rows for each index table (without ``resource_pk``, which the store adds)."""

    token: list[dict[str, Any]] = field(default_factory=list)
    string: list[dict[str, Any]] = field(default_factory=list)
    date: list[dict[str, Any]] = field(default_factory=list)
    number: list[dict[str, Any]] = field(default_factory=list)
    reference: list[dict[str, Any]] = field(default_factory=list)
    uri: list[dict[str, Any]] = field(default_factory=list)
    patients: set[str] = field(default_factory=set)
    #: the resource's type (a resource in no compartment gets a compartment_outside row)
    resource_type: str = ""
    #: an enforced privacy Consent's rules (see server/consent/rules.py)
    consent: ConsentRows | None = None

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        return {
            "token": self.token, "string": self.string, "date": self.date,
            "number": self.number, "reference": self.reference, "uri": self.uri,
        }

    def with_key(self, pk: int, own_patient_id: str | None = None) -> dict[str, list[dict[str, Any]]]:
        """Rows for each table (by table name) carrying ``resource_pk``, ready to insert.

        ``own_patient_id`` puts a Patient in its own compartment (its id may be assigned
        only after the rows were built)."""
        out = {f"{name}_index": [dict(row, resource_pk=pk) for row in rows]
               for name, rows in self.tables().items() if rows}
        patients = set(self.patients)
        if own_patient_id:
            patients.add(own_patient_id)
        if patients:
            out["compartment"] = [{"resource_pk": pk, "patient_id": p} for p in sorted(patients)]
        elif self.resource_type and self.resource_type != "Patient":
            out["compartment_outside"] = [{"resource_pk": pk, "resource_type": self.resource_type}]
        if self.consent is not None and self.consent.rules:
            out["consent_rule"] = [dict(row, resource_pk=pk) for row in self.consent.rules]
            out["consent_term"] = [dict(row, resource_pk=pk) for row in self.consent.terms]
        return out


def build_rows(
    resource: dict[str, Any], registry: SearchParameterRegistry, base_url: str | None = None
) -> IndexRows:
    rtype = resource["resourceType"]
    rows = IndexRows(resource_type=rtype)
    if rtype == "Consent":
        rows.consent = consent_rows(resource)
    compartment_codes = set(patient_compartment_params().get(rtype, ()))
    for param in registry.indexed_for(rtype):
        found = param.extract(resource)
        if not found:
            continue
        pid = param.param_id
        kind = param.type
        seen: set[tuple[Any, ...]] = set()
        for value in found:
            if kind == "token":
                for system, code, text in values.tokens(value):
                    key = (system, code, text)
                    if key not in seen:
                        seen.add(key)
                        rows.token.append({"param_id": pid, "system": system, "code": code, "text": text})
            elif kind == "string":
                for norm, exact in values.string_rows(value):
                    if (norm, exact) not in seen:
                        seen.add((norm, exact))
                        rows.string.append({"param_id": pid, "norm": norm, "value": exact})
            elif kind == "date":
                for low, high in values.date_ranges(value):
                    rows.date.append({"param_id": pid, "low": low, "high": high})
            elif kind in ("number", "quantity"):
                for nlow, nhigh, system, code in values.numbers(value):
                    rows.number.append({"param_id": pid, "low": nlow, "high": nhigh, "system": system, "code": code})
            elif kind == "reference":
                for target_type, target_id, url in values.references(value, base_url):
                    key = (target_type, target_id, url)
                    if key in seen:
                        continue
                    seen.add(key)
                    rows.reference.append(
                        {"param_id": pid, "target_type": target_type, "target_id": target_id, "url": url}
                    )
                    if param.code in compartment_codes and target_type == "Patient" and target_id:
                        rows.patients.add(target_id)
                for system, code, text in values.reference_identifiers(value):
                    rows.token.append({"param_id": pid, "system": system, "code": code, "text": text})
            elif kind == "uri":
                for uri in values.uris(value):
                    if (uri,) not in seen:
                        seen.add((uri,))
                        rows.uri.append({"param_id": pid, "value": uri})
    return rows
