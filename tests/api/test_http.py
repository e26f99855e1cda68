"""HTTP details: media types, Prefer, error statuses with OperationOutcome bodies,
unsupported methods and request ids."""

from __future__ import annotations

import pytest

from tests.api import ukdata as uk


def _outcome(r) -> dict:  # type: ignore[no-untyped-def, type-arg]
    body = r.json()
    assert body["resourceType"] == "OperationOutcome", body
    assert body["issue"] and all("severity" in i and "code" in i for i in body["issue"])
    return body  # type: ignore[no-any-return]


# -- Prefer ----------------------------------------------------------------------------------------
def test_prefer_return_minimal_gives_no_body(fhir):
    r = fhir.post("Patient", uk.service_user(1), headers={"Prefer": "return=minimal"})
    assert r.status_code == 201
    assert r.content == b""
    assert r.headers["location"].endswith("/_history/1")
    assert r.headers["etag"] == 'W/"1"'


def test_prefer_return_representation_gives_the_resource(fhir):
    r = fhir.post("Patient", uk.service_user(1), headers={"Prefer": "return=representation"})
    assert r.status_code == 201
    assert r.json()["resourceType"] == "Patient"


def test_prefer_return_operation_outcome(fhir):
    r = fhir.post("Patient", uk.service_user(1), headers={"Prefer": "return=OperationOutcome"})
    assert r.status_code == 201
    assert _outcome(r)["issue"][0]["severity"] == "information"


def test_prefer_on_update(fhir):
    created = fhir.create(uk.service_user(1))
    r = fhir.put(f"Patient/{created['id']}", dict(created, gender="male"), headers={"Prefer": "return=minimal"})
    assert r.status_code == 200
    assert r.content == b""
    assert r.headers["etag"] == 'W/"2"'


# -- formats ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("accept", ["application/fhir+xml", "application/xml", "text/html"])
def test_accept_other_than_json_is_406(fhir, accept):
    created = fhir.create(uk.service_user(1))
    r = fhir.get(f"Patient/{created['id']}", headers={"Accept": accept})
    assert r.status_code == 406
    _outcome(r)


@pytest.mark.parametrize("accept", ["application/json", "application/fhir+json;fhirVersion=4.0", "*/*",
                                    "application/fhir+xml;q=0.9, application/fhir+json"])
def test_json_accepts_are_served(fhir, accept):
    created = fhir.create(uk.service_user(1))
    r = fhir.get(f"Patient/{created['id']}", headers={"Accept": accept})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/fhir+json; charset=utf-8"


def test_format_xml_is_406_even_with_a_json_accept(fhir):
    assert fhir.get("Patient?_format=xml").status_code == 406
    assert fhir.get("metadata?_format=application/fhir+xml").status_code == 406


def test_format_json_overrides_an_xml_accept(fhir):
    r = fhir.get("Patient?_format=json", headers={"Accept": "application/fhir+xml"})
    assert r.status_code == 200
    assert r.json()["resourceType"] == "Bundle"
    assert "_format" not in (uk.link(r.json(), "self") or "")


def test_xml_content_type_is_415(fhir):
    r = fhir.request("POST", "Patient", content=b"<Patient xmlns='http://hl7.org/fhir'/>",
                     headers={"Content-Type": "application/fhir+xml"})
    assert r.status_code == 415
    _outcome(r)
    assert fhir.get("Patient").json()["total"] == 0


def test_plain_json_content_type_is_accepted(fhir):
    import orjson

    r = fhir.request("POST", "Patient", content=orjson.dumps(uk.service_user(1)),
                     headers={"Content-Type": "application/json"})
    assert r.status_code == 201


@pytest.mark.parametrize("body", [b"{not json", b"", b'{"resourceType": "Patient",}'])
def test_malformed_json_is_400(fhir, body):
    r = fhir.request("POST", "Patient", content=body, headers={"Content-Type": "application/fhir+json"})
    assert r.status_code == 400
    _outcome(r)


def test_json_that_is_not_a_resource_is_400(fhir):
    assert fhir.post("Patient", [1, 2, 3]).status_code == 400
    assert fhir.post("Patient", {"name": [{"family": "Smith"}]}).status_code == 400


# -- invalid content -------------------------------------------------------------------------------
@pytest.mark.parametrize("change, where", [
    ({"favouriteColour": "blue"}, "favouriteColour"),
    ({"active": "yes"}, "active"),
    ({"birthDate": "17/05/1984"}, "birthDate"),
    ({"gender": "bogus"}, "gender"),
    ({"name": {"family": "Smith"}}, "name"),
])
def test_invalid_content_is_422_with_a_located_issue(fhir, change, where):
    r = fhir.post("Patient", uk.service_user(1, **change))
    assert r.status_code == 422, r.text
    issues = _outcome(r)["issue"]
    assert any(where in " ".join(i.get("expression", [])) + i.get("diagnostics", "") for i in issues), issues
    assert fhir.get("Patient").json()["total"] == 0


def test_bad_nhs_number_fails_modulus_11(fhir):
    res = uk.service_user(1)
    res["identifier"][0]["value"] = "9990000019"  # valid is ...18
    r = fhir.post("Patient", res)
    assert r.status_code == 422
    issue = _outcome(r)["issue"][0]
    assert "modulus 11" in issue["diagnostics"]
    assert issue["expression"] == ["Patient.identifier[0].value"]


def test_invalid_update_is_422_and_keeps_the_current_version(fhir):
    created = fhir.create(uk.service_user(1))
    r = fhir.put(f"Patient/{created['id']}", dict(created, gender="bogus"))
    assert r.status_code == 422
    assert fhir.get(f"Patient/{created['id']}").headers["etag"] == 'W/"1"'


def test_resource_type_mismatch_is_422(fhir):
    r = fhir.post("Patient", uk.practitioner())
    assert r.status_code == 422
    _outcome(r)
    assert fhir.get("Practitioner").json()["total"] == 0


def test_missing_required_element_is_422(fhir):
    res = uk.referral("x")
    del res["intent"]
    assert fhir.post("ServiceRequest", res).status_code == 422


# -- routing -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("method, path", [
    ("PATCH", "Patient"),
    ("DELETE", "metadata"),
    ("PUT", ""),
    ("POST", "Patient/abc"),
    ("DELETE", "Patient/abc/_history/1"),
])
def test_unsupported_method_is_405(fhir, method, path):
    r = fhir.request(method, path)
    assert r.status_code == 405, r.text
    _outcome(r)


def test_unknown_path_is_404_operation_outcome(fhir):
    r = fhir.get("Patient/abc/_history/1/extra")
    assert r.status_code == 404
    _outcome(r)


def test_unknown_operation_is_404(fhir):
    r = fhir.get("Patient/$no-such-operation")
    assert r.status_code == 404
    _outcome(r)


# -- request ids -------------------------------------------------------------------------------------
def test_request_id_is_echoed(fhir):
    r = fhir.get("Patient", headers={"X-Request-Id": "cap-triage-7f3a"})
    assert r.headers["x-request-id"] == "cap-triage-7f3a"


def test_request_id_is_echoed_on_errors(fhir):
    r = fhir.get("Patient/missing", headers={"X-Request-Id": "cap-triage-404"})
    assert r.status_code == 404
    assert r.headers["x-request-id"] == "cap-triage-404"
    r = fhir.as_(None).get("Patient", headers={"X-Request-Id": "cap-triage-401"})
    assert r.status_code == 401
    assert r.headers["x-request-id"] == "cap-triage-401"


def test_request_id_is_assigned_when_absent(fhir):
    a = fhir.get("Patient").headers.get("x-request-id")
    b = fhir.get("Patient").headers.get("x-request-id")
    assert a and b and a != b
