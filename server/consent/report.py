"""The access report: who can see what of a service user's record, and why.

For the service user and their key worker, in words a person can check against what
they agreed: the custodian's direct care, then each active privacy Consent's provisions
as the engine reads them (the same flattening as ``rules.py``, so the report cannot say
something the engine does not do), then who looked at the record (from the audit trail).
"""

from __future__ import annotations

from typing import Any

from server.consent.callers import DEFAULT_CUSTODIAN
from server.consent.rules import (
    OVERRIDE_TERM,
    OVERRIDE_URL,
    consent_rows,
    is_enforced,
)

_KIND_WORDS = {
    "actor": "who", "purpose": "purpose", "class": "what", "label": "labelled", "data": "records",
}


def _string(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "valueString": value}


def _rule_parts(consent: dict[str, Any]) -> list[dict[str, Any]]:
    rows = consent_rows(consent)
    terms: dict[int, dict[str, list[str]]] = {}
    for t in rows.terms:
        terms.setdefault(t["node"], {}).setdefault(t["kind"], []).append(t["value"])
    parts = []
    for rule in rows.rules:
        own = terms.get(rule["node"], {})
        override = OVERRIDE_TERM["value"] in own.get(OVERRIDE_TERM["kind"], [])
        effect = "override (shares despite refusals)" if override else ("share" if rule["permit"] else "do not share")
        sub = [_string("effect", effect)]
        for kind, word in _KIND_WORDS.items():
            if rule[f"by_{kind}"]:
                sub.append(_string(word, ", ".join(sorted(own.get(kind, []))) or "(nobody this product can match)"))
            elif kind in ("actor", "class"):
                sub.append(_string(word, "anyone" if kind == "actor" else "everything"))
        parts.append({"name": "rule", "part": sub})
    return parts


def _override_part(consent: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for ext in consent.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == OVERRIDE_URL:
            fields = {p.get("url"): p for p in ext.get("extension") or [] if isinstance(p, dict)}
            reason = fields.get("reason", {}).get("valueCodeableConcept", {}).get("coding", [{}])[0].get("code", "")
            out.append({"name": "override", "part": [
                _string("reason", reason),
                _string("rationale", fields.get("rationale", {}).get("valueString", "")),
                {"name": "decidedBy", "valueReference": fields.get("decidedBy", {}).get("valueReference", {})},
                _string("date", fields.get("date", {}).get("valueDateTime", "")),
            ]})
    return out


def sharing_parts(consents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Parameters parts: the custodian's access, then every Consent and how it is read."""
    parts: list[dict[str, Any]] = [{
        "name": "custodian",
        "part": [
            {"name": "organization", "valueIdentifier": {
                "system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": DEFAULT_CUSTODIAN}},
            _string("access", "the trust's staff see this record for direct care, except where a Consent below "
                              "names them in a denial; records held by a local authority only by Consent"),
        ],
    }]
    enforced = [c for c in consents if is_enforced(c)]
    if not enforced:
        parts.append(_string("sharing", "no active Consent: nothing is shared beyond the organisation that holds "
                                        "each record"))
    for consent in consents:
        entry = [
            {"name": "reference", "valueReference": {"reference": f"Consent/{consent.get('id')}"}},
            _string("status", str(consent.get("status"))),
            _string("enforced", "yes" if is_enforced(consent) else "no (only active privacy Consents decide)"),
        ]
        if consent.get("dateTime"):
            entry.append({"name": "dateTime", "valueDateTime": consent["dateTime"]})
        for p in consent.get("performer") or []:
            entry.append({"name": "performer", "valueReference": p})
        if is_enforced(consent):
            entry += _rule_parts(consent) + _override_part(consent)
        parts.append({"name": "consent", "part": entry})
    return parts
