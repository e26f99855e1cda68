"""The CapabilityStatement, generated from what the server actually implements.

Resource types come from the registry of served types, search parameters from the
SearchParameter registry (only those the engine answers), interactions and operations
from the route table, so the statement cannot drift from the code.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from carebridge import __version__
from server.definitions.package import CONFORMANCE_TYPES, SEARCH_CODES, SEARCH_DEFINITIONS, SEARCH_TYPES
from server.definitions.search_parameters import RESOURCE_TYPES, SearchParameterRegistry

TYPE_INTERACTIONS = ["read", "vread", "update", "patch", "delete", "history-instance", "history-type",
                     "create", "search-type"]
SYSTEM_INTERACTIONS = ["transaction", "batch", "search-system", "history-system"]
VALIDATE = {"name": "validate", "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate",
            "documentation": "Validates against R4, its invariants and the profiles claimed, required or asked "
                             "for (profile); answers an OperationOutcome and stores nothing."}


@cache
def _statement(base: str, token_url: str, registry_id: int, registry: SearchParameterRegistry) -> dict[str, Any]:
    resources = []
    for rtype in RESOURCE_TYPES:
        params = [
            {"name": p.code, "definition": p.url, "type": p.type}
            for p in sorted(registry.for_type(rtype), key=lambda p: p.code)
            if (p.indexed or p.code in ("_id", "_lastUpdated")) and p.type not in ("composite", "special")
        ]
        reference_codes = sorted(p.code for p in registry.indexed_for(rtype) if p.type == "reference")
        entry: dict[str, Any] = {
            "type": rtype,
            "profile": f"http://hl7.org/fhir/StructureDefinition/{rtype}",
            "interaction": [{"code": c} for c in TYPE_INTERACTIONS],
            "versioning": "versioned-update",
            "readHistory": True,
            "updateCreate": True,
            "conditionalCreate": True,
            "conditionalRead": "not-supported",
            "conditionalUpdate": True,
            "conditionalDelete": "single",
            "referencePolicy": ["literal", "logical", "resolves"],
            "searchInclude": ["*", *(f"{rtype}:{c}" for c in reference_codes)],
            "searchRevInclude": sorted(
                f"{other}:{p.code}" for other in RESOURCE_TYPES for p in registry.indexed_for(other)
                if p.type == "reference" and (not p.targets or rtype in p.targets)
            ),
            "searchParam": params,
        }
        entry["operation"] = [VALIDATE]
        if rtype == "Patient":
            entry["operation"] = [
                {"name": "everything", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"},
                {"name": "dialog-trend", "definition": "https://fhir.carebridge.example/OperationDefinition/dialog-trend",
                 "documentation": "DIALOG scores and item ratings over time: a searchset of the derived Observations "
                                  "sorted by date, as Observation?subject=Patient/{id}&code=...&_sort=date"},
                {"name": "access-report",
                 "definition": "https://fhir.carebridge.example/OperationDefinition/access-report",
                 "documentation": "who can see what of the record and why (custodian, each Consent as enforced), "
                                  "and who looked at it; for the service user, their care team and auditors"},
                VALIDATE,
            ]
        resources.append(entry)
    for rtype in CONFORMANCE_TYPES:
        resources.append({
            "type": rtype,
            "profile": f"http://hl7.org/fhir/StructureDefinition/{rtype}",
            "documentation": "The carebridge FHIR package's resources (also browsable at /profiles); read-only.",
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "searchParam": [{"name": c, "definition": SEARCH_DEFINITIONS[c], "type": SEARCH_TYPES[c]}
                            for c in SEARCH_CODES],
        })
    return {
        "resourceType": "CapabilityStatement",
        "id": "carebridge",
        "url": f"{base}/metadata",
        "name": "CarebridgeFhirServer",
        "title": "carebridge FHIR R4 server",
        "status": "active",
        "date": "2026-12-02",
        "publisher": "Leicestershire Partnership NHS Trust",
        "kind": "instance",
        "software": {"name": "carebridge", "version": __version__},
        "implementation": {"description": "carebridge FHIR API", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [{
            "mode": "server",
            "security": {
                "cors": False,
                "service": [{"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                    "code": "SMART-on-FHIR",
                }]}],
                "extension": [{
                    "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                    "extension": [{"url": "token", "valueUri": token_url}],
                }],
                "description": "Every interaction but metadata needs an OAuth2 bearer token with SMART v2 scopes.",
            },
            "resource": resources,
            "interaction": [{"code": c} for c in SYSTEM_INTERACTIONS],
            "operation": [VALIDATE],
            "searchParam": [
                {"name": "_type", "type": "token", "definition": "http://hl7.org/fhir/SearchParameter/Resource-type"},
            ],
        }],
    }


def capability_statement(base: str, token_url: str, registry: SearchParameterRegistry) -> dict[str, Any]:
    return _statement(base, token_url, id(registry), registry)


def smart_configuration(token_url: str) -> dict[str, Any]:
    return {
        "token_endpoint": token_url,
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "grant_types_supported": ["client_credentials"],
        "scopes_supported": ["system/*.cruds", "system/*.rs", "user/*.rs", "patient/*.rs"],
        "capabilities": ["client-confidential-asymmetric", "permission-v2", "permission-v1"],
        "code_challenge_methods_supported": [],
    }
