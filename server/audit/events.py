"""AuditEvent resources in the shape of IHE Basic Audit Log Patterns (BALP), FHIR R4.

:class:`Access` is what the trail keeps of one request until the writer turns it into an
AuditEvent with :func:`rest_event` (or a token request with :func:`token_event`). The
codes are data, in the tables below; the functions only choose among them.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from server.audit.capture import Touched
from server.consent.callers import caller_of
from server.consent.context import AccessContext
from server.fhir.dates import format_instant, now_instant

# -- code systems -----------------------------------------------------------------------------
AUDIT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL = "http://hl7.org/fhir/restful-interaction"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ROLE_CLASS = "http://terminology.hl7.org/CodeSystem/v3-RoleClass"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
BALP_ENTITY_TYPE = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
CLIENT_ID = "https://fhir.carebridge.example/Id/client-id"
REQUEST_ID = "https://fhir.carebridge.example/Id/request-id"
AUDIT_SOURCE = "https://fhir.carebridge.example/Id/audit-source"
AUDIT_TAGS = "https://fhir.carebridge.example/CodeSystem/audit"

#: the marker on every event of an access under break-glass: ``_tag=<system>|break-glass``
BREAK_GLASS_TAG = {"system": AUDIT_TAGS, "code": "break-glass", "display": "Break-glass access"}
#: the custodian: the site every event is observed at
SITE = "RT5"
SOURCE_NAME = "carebridge FHIR server"

REST_TYPE = {"system": AUDIT_TYPE, "code": "rest", "display": "RESTful Operation"}
AUTH_TYPE = {"system": DCM, "code": "110114", "display": "User Authentication"}
LOGIN = {"system": DCM, "code": "110122", "display": "Login"}

PURPOSES = {
    "TREAT": "treatment", "ETREAT": "Emergency Treatment", "BTG": "break the glass",
    "HPAYMT": "healthcare payment", "HOPERAT": "healthcare operations", "PUBHLTH": "public health",
    "HRESCH": "healthcare research", "PATRQT": "patient requested", "FAMRQT": "family requested",
    "CAREMGT": "care management", "COC": "coordination of care", "PWATRNY": "power of attorney",
}

#: agent roles: the user, the client application (source of the request), this server
#: (its destination) and the organisation the client acts for
AGENT_TYPES = {
    "user": {"coding": [{"system": PARTICIPATION, "code": "IRCP", "display": "information recipient"}]},
    "author": {"coding": [{"system": PARTICIPATION, "code": "AUT", "display": "author (originator)"}]},
    "client": {"coding": [{"system": DCM, "code": "110153", "display": "Source Role ID"}]},
    "server": {"coding": [{"system": DCM, "code": "110152", "display": "Destination Role ID"}]},
    "organization": {"coding": [{"system": ROLE_CLASS, "code": "PROV", "display": "healthcare provider"}]},
}

#: entity kinds: (audit-entity-type, object-role)
ENTITIES = {
    "patient": ({"system": ENTITY_TYPE, "code": "1", "display": "Person"},
                {"system": OBJECT_ROLE, "code": "1", "display": "Patient"}),
    "data": ({"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
             {"system": OBJECT_ROLE, "code": "4", "display": "Domain Resource"}),
    "query": ({"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
              {"system": OBJECT_ROLE, "code": "24", "display": "Query"}),
    "request": ({"system": BALP_ENTITY_TYPE, "code": "XrequestId", "display": "X-Request-Id"}, None),
}

#: outcome codes (R4 audit-event-outcome) and the words for a successful request
OUTCOME_TEXT = {"0": "Success", "4": "Minor failure", "8": "Serious failure", "12": "Major failure"}


def outcome_code(status: int) -> str:
    """HTTP status -> R4 outcome: 4 for a refused or bad request, 8 for a server error,
    12 when the server could not serve at all (503)."""
    if status < 400:
        return "0"
    if status < 500:
        return "4"
    return "12" if status == 503 else "8"


def instant(micros: int | None = None) -> str:
    return now_instant()[0] if micros is None else format_instant(micros)


def is_break_glass(ctx: AccessContext | None) -> bool:
    """Whether the glass was broken: as the consent policy decides it (a clinician, purpose
    BTG or ETREAT, a stated reason), so that the report lists exactly the accesses it opened."""
    return ctx is not None and caller_of(ctx).break_glass


@dataclass
class Access:
    """One request as the trail keeps it until the writer builds its AuditEvent."""

    recorded: str
    subtype: str
    action: str
    status: int
    ctx: AccessContext | None
    method: str = "GET"
    path: str = ""
    address: str | None = None
    request_id: str | None = None
    query: str | None = None
    outcome_desc: str | None = None
    operation: str | None = None
    resources: list[Touched] = field(default_factory=list)
    #: the patients concerned: named by the request, and (added by the writer) those whose
    #: compartment holds a resource returned or written
    patients: list[str] = field(default_factory=list)
    #: an AuditEvent already built (token requests): stored as it is
    built: dict[str, Any] | None = None


# -- the pieces -------------------------------------------------------------------------------
def _coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def purpose_of_event(ctx: AccessContext | None) -> list[dict[str, Any]]:
    code = (ctx.purpose_of_use or "").upper() if ctx is not None else ""
    if not code:
        return []
    return [{"coding": [_coding(ACT_REASON, code, PURPOSES.get(code))]}]


def agents(ctx: AccessContext | None, address: str | None, writes: bool) -> list[dict[str, Any]]:
    """The user (requestor), the client application, its organisation; unknown callers
    (no valid token) appear as a client known only by its network address."""
    out: list[dict[str, Any]] = []
    network = {"address": address, "type": "2"} if address else None
    if ctx is not None and ctx.fhir_user:
        user: dict[str, Any] = {
            "type": AGENT_TYPES["author" if writes else "user"],
            "who": {"reference": ctx.fhir_user},
            "requestor": True,
        }
        purposes = purpose_of_event(ctx)
        if purposes and is_break_glass(ctx) and ctx.break_glass_reason:
            purposes[0]["text"] = ctx.break_glass_reason
        if purposes:
            user["purposeOfUse"] = purposes
        out.append(user)
    client: dict[str, Any] = {
        "type": AGENT_TYPES["client"],
        "who": ({"identifier": {"system": CLIENT_ID, "value": ctx.client_id}, "display": ctx.client_id}
                if ctx is not None and ctx.client_id else {"display": "unidentified client"}),
        "requestor": not out,
    }
    if network:
        client["network"] = network
    out.append(client)
    if ctx is not None and ctx.organization:
        out.append({
            "type": AGENT_TYPES["organization"],
            "who": {"identifier": {"system": ODS, "value": ctx.organization}},
            "requestor": False,
        })
    return out


def source(base_url: str | None) -> dict[str, Any]:
    observer: dict[str, Any] = {"display": SOURCE_NAME}
    if base_url:
        observer["identifier"] = {"system": AUDIT_SOURCE, "value": base_url}
    return {"site": SITE, "observer": observer,
            "type": [_coding(SOURCE_TYPE, "4", "Application Server")]}


def _entity(kind: str, **values: Any) -> dict[str, Any]:
    etype, role = ENTITIES[kind]
    out: dict[str, Any] = {"type": etype}
    if role is not None:
        out["role"] = role
    out.update(values)
    return out


def entities(access: Access) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen_patients: set[str] = set()
    for pid in access.patients:
        if pid and pid not in seen_patients:
            seen_patients.add(pid)
            out.append(_entity("patient", what={"reference": f"Patient/{pid}"}))
    seen: set[tuple[str, str, int | None]] = set()
    for rtype, rid, version, _pk, _deleted in access.resources:
        key = (rtype, rid, version)
        if key in seen:
            continue
        seen.add(key)
        ref = f"{rtype}/{rid}/_history/{version}" if version else f"{rtype}/{rid}"
        out.append(_entity("data", what={"reference": ref}))
    if access.query is not None:
        query = access.query
        entity = _entity("query", description=f"{access.method} {access.path}{'?' + query if query else ''}")
        if query:  # base64 of the query string; an empty element is not valid FHIR
            entity["query"] = base64.b64encode(query.encode()).decode()
        out.append(entity)
    if access.request_id or is_break_glass(access.ctx):
        request: dict[str, Any] = _entity("request")
        if access.request_id:
            request["what"] = {"identifier": {"system": REQUEST_ID, "value": access.request_id}}
        details = []
        if is_break_glass(access.ctx):
            assert access.ctx is not None
            details.append({"type": "break-glass-reason", "valueString": access.ctx.break_glass_reason or ""})
        if details:
            request["detail"] = details
        out.append(request)
    return out


def rest_event(access: Access, base_url: str | None = None) -> dict[str, Any]:
    """The AuditEvent of one REST interaction."""
    code = outcome_code(access.status)
    desc = access.outcome_desc or (f"HTTP {access.status}" if code == "0"
                                   else f"HTTP {access.status}: {OUTCOME_TEXT[code].lower()}")
    subtype = [_coding(RESTFUL, access.subtype, access.subtype)]
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "type": REST_TYPE,
        "subtype": subtype,
        "action": access.action,
        "recorded": access.recorded,
        "outcome": code,
        "outcomeDesc": desc,
    }
    if access.operation:
        subtype.append({"system": "https://fhir.carebridge.example/CodeSystem/operation",
                        "code": access.operation})
    purposes = purpose_of_event(access.ctx)
    if purposes:
        event["purposeOfEvent"] = purposes
    event["agent"] = agents(access.ctx, access.address, access.action in ("C", "U", "D"))
    event["source"] = source(base_url)
    ents = entities(access)
    if ents:
        event["entity"] = ents
    if is_break_glass(access.ctx):
        event["meta"] = {"tag": [BREAK_GLASS_TAG]}
    return event


def token_event(
    ctx: AccessContext | None, outcome: str, reason: str | None, address: str | None,
    request_id: str | None, base_url: str | None = None, scope: str | None = None,
) -> dict[str, Any]:
    """The AuditEvent of a request to the token endpoint (issued or refused). ``ctx`` holds
    what is known of the caller: the client id it claimed and, for an issued token, its
    organisation, user and purpose."""
    issued = f"access token issued{f' (scope {scope})' if scope else ''}"
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "type": AUTH_TYPE,
        "subtype": [LOGIN],
        "action": "E",
        "recorded": instant(),
        "outcome": outcome,
        "outcomeDesc": reason or (issued if outcome == "0" else OUTCOME_TEXT[outcome]),
    }
    purposes = purpose_of_event(ctx) if outcome == "0" else []
    if purposes:
        event["purposeOfEvent"] = purposes
    event["agent"] = agents(ctx, address, False)
    event["source"] = source(base_url)
    if request_id:
        event["entity"] = [_entity("request", what={"identifier": {"system": REQUEST_ID, "value": request_id}})]
    return event
