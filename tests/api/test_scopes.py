"""SMART scopes over HTTP, on SQLite and PostgreSQL: v2 letters and v1 read/write, filters,
the patient compartment of patient/ scopes, and the 401/403 answers."""

from __future__ import annotations

import time

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.api import ukdata as uk
from tests.conftest import NHS, nhs_number


@pytest.fixture
def world(fhir):
    p1 = fhir.create(uk.service_user(1))
    p2 = fhir.create(uk.service_user(2, family="Nunez"))
    return {
        "p1": p1, "p2": p2,
        "sr1": fhir.create(uk.referral(p1["id"])),
        "sr2": fhir.create(uk.referral(p2["id"], status="completed")),
        "o1": fhir.create(uk.observation(p1["id"])),
        "org": fhir.create(uk.organization()),
    }


def _as(fhir, token_for, scope, **claims):
    return fhir.as_(token_for(scope, **claims))


def _outcome(r, status):
    assert r.status_code == status, r.text
    assert r.json()["resourceType"] == "OperationOutcome"
    return r.json()["issue"][0]


# -- 401 ---------------------------------------------------------------------------------------
def test_missing_token_is_401_with_a_challenge(fhir, world):
    r = fhir.as_(None).get("Patient")
    assert _outcome(r, 401)["code"] == "login"
    assert r.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Bearer not-a-jwt", "Basic dXNlcjpwYXNz", "Bearer "])
def test_bad_authorization_is_401(fhir, world, header):
    r = fhir.client.get("/fhir/Patient", headers={"Authorization": header})
    _outcome(r, 401)
    assert 'error="invalid_token"' in r.headers["www-authenticate"]


def test_expired_token_is_401(fhir, world, token_for, app):
    token = app.state.api.tokens.issue("old-client", "system/*.rs", lifetime=-120)
    r = fhir.as_(token).get("Patient")
    _outcome(r, 401)
    assert 'error="invalid_token"' in r.headers["www-authenticate"]


def test_token_signed_by_another_key_is_401(fhir, world):
    now = int(time.time())
    claims = {"iss": "carebridge", "aud": "carebridge-fhir", "sub": "x", "client_id": "x",
              "scope": "system/*.cruds", "iat": now, "exp": now + 300}
    forged = jwt.encode({"alg": "RS256"}, claims, RSAKey.generate_key(2048))
    _outcome(fhir.as_(forged).get("Patient"), 401)


def test_metadata_and_smart_configuration_need_no_token(fhir):
    anon = fhir.as_(None)
    r = anon.get("metadata")
    assert r.status_code == 200 and r.json()["resourceType"] == "CapabilityStatement"
    r = anon.get(".well-known/smart-configuration")
    assert r.status_code == 200
    conf = r.json()
    assert conf["token_endpoint"].endswith("/auth/token")
    assert "client_credentials" in conf.get("grant_types_supported", [])


# -- 403 and what each scope grants --------------------------------------------------------------
@pytest.mark.parametrize(("scope", "allowed"), [
    ("system/*.cruds", {"c", "r", "u", "d", "s"}),
    ("system/Patient.rs", {"r", "s"}),
    ("system/Patient.r", {"r"}),
    ("system/Patient.s", {"s"}),
    ("system/Patient.cu", {"c", "u"}),
    ("system/Patient.d", {"d"}),
    ("system/Patient.read", {"r", "s"}),
    ("system/Patient.write", {"c", "u", "d"}),
    ("user/Patient.*", {"c", "r", "u", "d", "s"}),
    ("system/Observation.cruds", set()),
])
def test_interactions_granted_by_scope(fhir, world, token_for, scope, allowed):
    client = _as(fhir, token_for, scope)
    p1 = world["p1"]
    checks = {
        "r": lambda: client.get(f"Patient/{p1['id']}"),
        "s": lambda: client.get("Patient"),
        "c": lambda: client.post("Patient", uk.service_user(7)),
        "u": lambda: client.put(f"Patient/{p1['id']}", dict(p1, gender="male")),
        "d": lambda: client.delete(f"Patient/{world['p2']['id']}"),
    }
    for letter, call in checks.items():
        r = call()
        if letter in allowed:
            assert r.status_code in (200, 201), (scope, letter, r.text)
            if letter == "d":
                assert fhir.get(f"Patient/{world['p2']['id']}").status_code == 410
            if letter == "u":
                assert fhir.get(f"Patient/{p1['id']}").json()["gender"] == "male"
        else:
            assert _outcome(r, 403)["code"] == "forbidden", (scope, letter)


def test_malformed_permissions_are_401(fhir, world, token_for):
    _outcome(_as(fhir, token_for, "system/Patient.sr").get("Patient"), 401)


def test_filtered_scope_narrows_read_and_search(fhir, world, token_for):
    client = _as(fhir, token_for, "system/ServiceRequest.rs?status=active")
    r = client.get("ServiceRequest")
    assert uk.ids(r.json()) == [world["sr1"]["id"]] and r.json()["total"] == 1
    assert client.get(f"ServiceRequest/{world['sr1']['id']}").status_code == 200
    _outcome(client.get(f"ServiceRequest/{world['sr2']['id']}"), 404)  # hidden, not forbidden
    assert client.get("ServiceRequest?_summary=count").json()["total"] == 1


def test_filtered_scope_narrows_writes(fhir, world, token_for):
    client = _as(fhir, token_for, "system/ServiceRequest.cru?status=active")
    pid = world["p1"]["id"]
    assert client.post("ServiceRequest", uk.referral(pid)).status_code == 201
    _outcome(client.post("ServiceRequest", uk.referral(pid, status="draft")), 403)
    sr1 = world["sr1"]
    _outcome(client.put(f"ServiceRequest/{sr1['id']}", dict(sr1, status="revoked")), 403)
    assert fhir.get(f"ServiceRequest/{sr1['id']}").json()["status"] == "active"
    assert fhir.get("ServiceRequest?_summary=count").json()["total"] == 3


def test_patient_scope_is_limited_to_the_compartment(fhir, world, token_for):
    p1, p2 = world["p1"]["id"], world["p2"]["id"]
    client = _as(fhir, token_for, "patient/*.rs", patient=p1)
    assert client.get(f"Patient/{p1}").status_code == 200
    _outcome(client.get(f"Patient/{p2}"), 404)
    assert uk.ids(client.get("Patient").json()) == [p1]
    assert uk.ids(client.get("ServiceRequest").json()) == [world["sr1"]["id"]]
    assert uk.ids(client.get(f"ServiceRequest?subject={p2}").json()) == []
    assert client.get(f"Observation?patient={p1}").json()["total"] == 1
    # outside the compartment: the trust's Organization is not visible
    _outcome(client.get(f"Organization/{world['org']['id']}"), 404)
    # chains and includes do not leak the other patient
    assert uk.ids(client.get("ServiceRequest?subject.family=nunez").json()) == []
    bundle = client.get(f"Patient?_revinclude=ServiceRequest:subject&_id={p1},{p2}").json()
    assert uk.refs(bundle) == {f"Patient/{p1}", f"ServiceRequest/{world['sr1']['id']}"}


def test_patient_scope_from_fhir_user(fhir, world, token_for):
    p1 = world["p1"]["id"]
    client = _as(fhir, token_for, "patient/ServiceRequest.rs", fhir_user=f"Patient/{p1}")
    assert uk.ids(client.get("ServiceRequest").json()) == [world["sr1"]["id"]]


def test_patient_scope_without_a_patient_sees_nothing(fhir, world, token_for):
    client = _as(fhir, token_for, "patient/*.rs")
    r = client.get("Patient")
    assert r.status_code == 200 and r.json()["total"] == 0


def test_patient_scope_write_stays_in_the_compartment(fhir, world, token_for):
    p1, p2 = world["p1"]["id"], world["p2"]["id"]
    client = _as(fhir, token_for, "patient/ServiceRequest.cruds", patient=p1)
    assert client.post("ServiceRequest", uk.referral(p1)).status_code == 201
    _outcome(client.post("ServiceRequest", uk.referral(p2)), 403)
    assert fhir.get(f"ServiceRequest?subject={p2}").json()["total"] == 1


def test_search_of_an_ungranted_type_is_403(fhir, world, token_for):
    client = _as(fhir, token_for, "system/Patient.rs")
    _outcome(client.get("Observation"), 403)
    _outcome(client.get(f"Observation?patient={world['p1']['id']}"), 403)


def test_include_of_an_ungranted_type_is_left_out(fhir, world, token_for):
    client = _as(fhir, token_for, "system/ServiceRequest.rs")
    bundle = client.get("ServiceRequest?_include=ServiceRequest:subject").json()
    assert uk.refs(bundle) == {f"ServiceRequest/{world['sr1']['id']}", f"ServiceRequest/{world['sr2']['id']}"}


def test_scope_filter_on_identifier(fhir, world, token_for):
    client = _as(fhir, token_for, f"system/Patient.rs?identifier={NHS}|{nhs_number(2)}")
    assert uk.ids(client.get("Patient").json()) == [world["p2"]["id"]]
