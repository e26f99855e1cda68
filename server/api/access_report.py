"""``GET Patient/{id}/$access-report``: who can see what of this record and why, and who looked.

Answered to the service user themselves, to the trust's staff on the service user's care
team (the key worker), and to auditors. Anyone else who can see the Patient gets 403;
anyone who cannot gets 404, as for a missing Patient. The answer is a Parameters resource:
the custodian's access, each Consent as the consent engine reads it
(:mod:`server.consent.report`), then the newest accesses from the audit trail.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from server.api.context import ApiState, access_context, state
from server.api.http import check_accept, fhir_response
from server.audit.store import patient_accesses
from server.consent.callers import DEFAULT_CUSTODIAN, caller_of
from server.consent.context import AccessContext
from server.consent.report import sharing_parts
from server.fhir.errors import Forbidden

#: the report's own reads: the Consents and care team of the one patient asked about
_REPORT = AccessContext.system("carebridge-access-report", "system/Consent.rs system/CareTeam.rs")
ACCESSES_SHOWN = 100


def _may_see_report(api: ApiState, ctx: AccessContext, patient_id: str) -> bool:
    caller = caller_of(ctx)
    if caller.user == f"Patient/{patient_id}" or api.repository.policy.is_auditor(ctx, caller):
        return True
    if caller.kind != "staff" or caller.organization != DEFAULT_CUSTODIAN or not caller.user:
        return False
    repo = api.repository
    query = repo.parse_search(["CareTeam"], [("subject", f"Patient/{patient_id}"), ("participant", caller.user),
                                             ("status", "active"), ("_count", "1")])
    return bool(repo.search(_REPORT, query).matches)


def _access_part(event: dict[str, Any]) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"name": "recorded", "valueInstant": event.get("recorded")}]
    subtypes: list[dict[str, Any]] = event.get("subtype") or []
    subtype = subtypes[0].get("code") if subtypes else None
    if subtype:
        parts.append({"name": "interaction", "valueCode": subtype})
    for agent in event.get("agent") or []:
        who = agent.get("who") or {}
        if who:
            parts.append({"name": "who", "valueReference": who})
    for purpose in event.get("purposeOfEvent") or []:
        for coding in purpose.get("coding") or []:
            parts.append({"name": "purpose", "valueCode": coding.get("code")})
    return {"name": "access", "part": parts}


async def report(request: Request) -> Response:
    check_accept(request)
    api, ctx = state(request), access_context(request)
    patient_id = request.path_params["id"]
    repo = api.repository
    await api.call(repo.read, ctx, "Patient", patient_id)  # 404 for a Patient the caller cannot see
    if not await api.call(_may_see_report, api, ctx, patient_id):
        raise Forbidden("the access report is for the service user, their care team at the trust, and auditors")
    query = repo.parse_search(["Consent"], [("patient", f"Patient/{patient_id}"), ("_count", "100")])
    consents = [m.resource for m in (await api.call(repo.search, _REPORT, query)).matches]
    parameters: list[dict[str, Any]] = sharing_parts(consents)
    if api.audit is None:
        parameters.append({"name": "accesses", "valueString": "the audit trail is switched off on this server"})
    else:
        events = await api.call(patient_accesses, api.audit.store, patient_id, count=ACCESSES_SHOWN)
        parameters += [_access_part(e) for e in events]
    return fhir_response({"resourceType": "Parameters", "parameter": parameters}, 200)
