"""Refused requests, token requests and break-glass accesses in the audit trail, and the
privacy officer's report."""

from __future__ import annotations

from typing import Any

import orjson
from fhir.resources.R4B.auditevent import AuditEvent
from starlette.requests import Request

from carebridge.cli import main
from server.audit.events import BREAK_GLASS_TAG, CLIENT_ID, REQUEST_ID
from tests.api import ukdata as uk
from tests.audit.conftest import rid


def test_a_request_without_a_token_is_audited_as_a_minor_failure(audited):
    request_id = rid()
    r = audited.as_(None).get("Patient", headers={"X-Request-Id": request_id})
    assert r.status_code == 401
    ev = audited.event_for(request_id)
    assert (ev["outcome"], ev["subtype"][0]["code"]) == ("4", "search-type")
    assert "access token" in ev["outcomeDesc"]
    (client,) = ev["agent"]
    assert client["who"] == {"display": "unidentified client"} and client["requestor"] is True
    assert client["network"]["address"] == "testclient"
    assert "purposeOfEvent" not in ev


def test_a_bad_token_is_audited(audited):
    request_id = rid()
    r = audited.as_("not-a-jwt").get("Patient/1", headers={"X-Request-Id": request_id})
    assert r.status_code == 401
    assert audited.event_for(request_id)["outcome"] == "4"


def test_a_refused_interaction_is_audited_with_the_client(audited):
    reader = audited.as_(audited.mint("system/Patient.rs", client="read-only-app", organization="C82001"))
    request_id = rid()
    r = reader.post("Patient", uk.service_user(1), headers={"X-Request-Id": request_id})
    assert r.status_code == 403
    ev = audited.event_for(request_id)
    assert (ev["subtype"][0]["code"], ev["action"], ev["outcome"]) == ("create", "C", "4")
    assert ev["agent"][0]["who"]["identifier"] == {"system": CLIENT_ID, "value": "read-only-app"}
    assert ev["agent"][1]["who"]["identifier"]["value"] == "C82001"
    assert "HTTP 403" in ev["outcomeDesc"]
    assert "entity" not in ev or all(e.get("role", {}).get("code") != "4" for e in ev["entity"])


def _request(request_id: str) -> Request:
    return Request({"type": "http", "method": "POST", "path": "/auth/token", "headers": [
        (b"x-request-id", request_id.encode())], "client": ("10.1.2.3", 50000), "query_string": b""})


def test_token_events_for_the_token_endpoint(audited):
    trail = audited.trail
    ok, refused = rid(), rid()
    trail.token_event("gp-connect", "success", None, _request(ok))
    trail.token_event("gp-connect", "invalid_client", "the client assertion has expired", _request(refused))
    trail.token_event(None, 4, "no client_assertion", _request(rid()))
    issued, denied = audited.event_for(ok), audited.event_for(refused)
    for ev in (issued, denied):
        AuditEvent.model_validate(ev)
        assert ev["type"]["code"] == "110114" and ev["subtype"][0]["code"] == "110122"
        assert ev["agent"][0]["who"]["identifier"] == {"system": CLIENT_ID, "value": "gp-connect"}
        assert ev["agent"][0]["network"] == {"address": "10.1.2.3", "type": "2"}
    assert issued["outcome"] == "0" and issued["outcomeDesc"] == "access token issued"
    assert denied["outcome"] == "4"
    assert denied["outcomeDesc"] == "invalid_client: the client assertion has expired"
    assert len(audited.events(type="http://dicom.nema.org/resources/ontology/DCM|110114")) == 3


def _break_glass(audited: Any, reason: str = "unconscious in ED, no consent on record") -> Any:
    return audited.as_(audited.mint(
        "system/*.rs", client="ed-viewer", fhirUser="Practitioner/dr-osei", organization="RWE",
        purpose_of_use="BTG", break_glass_reason=reason,
    ))


def test_break_glass_access_is_marked_and_carries_the_reason(audited):
    pid = audited.create(uk.service_user(1))["id"]
    request_id = rid()
    assert _break_glass(audited).get(f"Patient/{pid}", headers={"X-Request-Id": request_id}).status_code == 200
    ev = audited.event_for(request_id)
    assert ev["meta"]["tag"] == [{"system": BREAK_GLASS_TAG["system"], "code": "break-glass",
                                  "display": BREAK_GLASS_TAG["display"]}]
    assert ev["purposeOfEvent"][0]["coding"][0]["code"] == "BTG"
    user = ev["agent"][0]
    assert user["who"]["reference"] == "Practitioner/dr-osei"
    assert user["purposeOfUse"][0]["text"] == "unconscious in ED, no consent on record"
    (request,) = [e for e in ev["entity"] if e["type"]["code"] == "XrequestId"]
    assert request["detail"] == [{"type": "break-glass-reason",
                                  "valueString": "unconscious in ED, no consent on record"}]
    AuditEvent.model_validate(ev)
    # findable by the marker and by purpose; ordinary accesses are not marked
    tagged = audited.events(_tag=f"{BREAK_GLASS_TAG['system']}|break-glass")
    assert [e["id"] for e in tagged] == [ev["id"]]
    assert [e["id"] for e in audited.events(purpose="BTG")] == [ev["id"]]


def test_the_break_glass_report(audited, audit_settings, capsys, monkeypatch):
    pid = audited.create(uk.service_user(1))["id"]
    oid = audited.create(uk.observation(pid))["id"]
    glass = _break_glass(audited)
    first, second = rid(), rid()
    glass.get(f"Patient/{pid}", headers={"X-Request-Id": first})
    glass.get(f"Observation?subject=Patient/{pid}", headers={"X-Request-Id": second})
    audited.get(f"Patient/{pid}")  # an ordinary access: not in the report
    audited.settle()
    monkeypatch.delenv("CAREBRIDGE_AUDIT_DATABASE_URL", raising=False)
    url = audit_settings.database_url

    assert main(["audit", "break-glass", "--format", "json", "--database-url", url]) == 0
    rows = orjson.loads(capsys.readouterr().out)
    assert [r["request_id"] for r in rows] == [first, second]
    read, search = rows
    assert read["who"] == "Practitioner/dr-osei" and read["client"] == "ed-viewer"
    assert read["organisation"] == "RWE" and read["patient"] == [f"Patient/{pid}"]
    assert read["reason"] == "unconscious in ED, no consent on record" and read["purpose"] == "BTG"
    assert read["accessed"] == {"interaction": "read", "resources": [f"Patient/{pid}/_history/1"], "query": None}
    assert search["accessed"]["resources"] == [f"Observation/{oid}/_history/1"]
    assert search["accessed"]["query"].startswith("GET /fhir/Observation?subject=Patient")

    assert main(["audit", "break-glass", "--database-url", url]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["when", "who", "client", "organisation", "patient", "purpose", "reason",
                                "accessed", "outcome", "request_id"]
    assert first in table[1] and "dr-osei" in table[1] and "unconscious in ED" in table[1]
    assert table[-1] == "2 break-glass accesses"

    assert main(["audit", "break-glass", "--until", "2020-01-01", "--database-url", url]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "0 break-glass accesses"
    assert main(["audit", "break-glass", "--since", "2020-01-01", "--format", "json", "--database-url", url]) == 0
    assert len(orjson.loads(capsys.readouterr().out)) == 2


def test_request_id_entity_is_searchable(audited):
    request_id = rid()
    audited.get("Patient", headers={"X-Request-Id": request_id})
    ev = audited.event_for(request_id)
    assert any(e.get("what", {}).get("identifier") == {"system": REQUEST_ID, "value": request_id}
               for e in ev["entity"])


def test_break_glass_purpose_without_a_reason_is_not_marked(audited):
    """No reason, no broken glass (the consent policy decides as for any clinician), so the
    privacy officer's report is not filled with ordinary accesses."""
    pid = audited.create(uk.service_user(1))["id"]
    request_id = rid()
    no_reason = audited.as_(audited.mint("system/*.rs", fhirUser="Practitioner/dr-osei", organization="RT5",
                                         purpose_of_use="BTG"))
    assert no_reason.get(f"Patient/{pid}", headers={"X-Request-Id": request_id}).status_code == 200
    ev = audited.event_for(request_id)
    assert "tag" not in ev["meta"] and ev["purposeOfEvent"][0]["coding"][0]["code"] == "BTG"
    assert audited.events(_tag=f"{BREAK_GLASS_TAG['system']}|break-glass") == []


def test_the_token_endpoint_audits_every_issue_and_refusal(audited):
    """Through real HTTP: a token issued to a registered client, then the same assertion
    replayed and refused."""
    from joserfc.jwk import ECKey, RSAKey

    from tests.auth.conftest import TOKEN_URL, gp_client, sign, token_form

    key = RSAKey.generate_key(2048, parameters={"kid": "audit-rsa"}, private=True)
    ec = ECKey.generate_key("P-384", parameters={"kid": "audit-ec"}, private=True)
    audited.app.state.api.clients.save(gp_client(key, ec, client_id="gp-audited", organization="C82040"))
    assertion = sign(key, "RS384", client_id="gp-audited")
    issued, refused = rid(), rid()
    r = audited.client.post(TOKEN_URL, data=token_form(assertion), headers={"X-Request-Id": issued})
    assert r.status_code == 200, r.text
    r = audited.client.post(TOKEN_URL, data=token_form(assertion), headers={"X-Request-Id": refused})
    assert r.status_code in (400, 401)
    ok, replay = audited.event_for(issued), audited.event_for(refused)
    assert (ok["type"]["code"], ok["outcome"]) == ("110114", "0")
    assert ok["outcomeDesc"] == "access token issued (scope system/*.rs)"
    client, org = ok["agent"]
    assert client["who"]["identifier"] == {"system": CLIENT_ID, "value": "gp-audited"}
    assert org["who"]["identifier"]["value"] == "C82040"
    assert replay["outcome"] == "4" and replay["outcomeDesc"].startswith(r.json()["error"])
    assert replay["agent"][0]["who"]["identifier"]["value"] == "gp-audited"
