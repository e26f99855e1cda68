"""POST /auth/token over HTTP, on SQLite and PostgreSQL, with assertions signed by keys made
in the test: what is issued, every refusal and its OAuth error, and what the token does."""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

import orjson
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, RSAKey

from server.auth.backend_services import CLOCK_SKEW, MAX_ASSERTION_LIFETIME
from server.auth.clients import ClientRegistry
from server.store.engine import make_engine
from tests.auth.conftest import GP, TOKEN_URL, TRUST, gp_client, public_jwks, sign, token_form
from tests.conftest import patient


def _ok(r: Any) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = r.json()
    return body


def _refused(r: Any, status: int, error: str, words: str = "") -> str:
    assert r.status_code == status, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert set(body) == {"error", "error_description"}
    assert body["error"] == error, body
    assert words in body["error_description"], body
    return str(body["error_description"])


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))  # type: ignore[no-any-return]


# -- issued ----------------------------------------------------------------------------------
@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_a_registered_client_gets_a_token_that_reads_patients(http, trust_registered, fhir, rsa_key, ec_key, alg):
    fhir.create(patient())
    key = rsa_key if alg == "RS384" else ec_key
    assertion = sign(key, alg, {"fhirUser": "Practitioner/dr-khan", "purpose_of_use": "TREAT"}, client_id=TRUST)
    body = _ok(http.post("/auth/token", data=token_form(assertion, "system/*.rs")))
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 300
    assert body["scope"] == "system/*.rs"
    claims = _claims(body["access_token"])
    assert claims["organization"] == "RT5"
    assert claims["fhirUser"] == "Practitioner/dr-khan"
    assert claims["purpose_of_use"] == "TREAT"
    assert claims["client_id"] == TRUST
    assert claims["exp"] - claims["iat"] == 300
    r = fhir.as_(body["access_token"]).get("Patient")
    assert r.status_code == 200, r.text
    assert r.json()["total"] == 1
    ctx = http.app.state.api.tokens.verify(body["access_token"])
    assert (ctx.client_id, ctx.organization, ctx.fhir_user, ctx.purpose_of_use) == (
        TRUST, "RT5", "Practitioner/dr-khan", "TREAT")


def test_the_organisation_is_the_registered_one_and_consent_decides_by_it(http, registered, fhir, rsa_key):
    """The GP practice (C82040) is not the custodian and no Consent shares with it: nothing
    to see, whatever organisation the assertion claims."""
    fhir.create(patient())
    assertion = sign(rsa_key, "RS384", {"fhirUser": "Practitioner/gp-1", "purpose_of_use": "TREAT",
                                        "organization": "RT5"})
    token = _ok(http.post("/auth/token", data=token_form(assertion)))["access_token"]
    assert _claims(token)["organization"] == "C82040"
    r = fhir.as_(token).get("Patient")
    assert r.status_code == 200, r.text
    assert r.json()["total"] == 0


def test_the_token_answers_with_its_scope_only(http, trust_registered, fhir, rsa_key):
    pid = fhir.create(patient())["id"]
    assertion = sign(rsa_key, "RS384", {"fhirUser": "Practitioner/dr-khan", "purpose_of_use": "TREAT"},
                     client_id=TRUST)
    body = _ok(http.post("/auth/token", data=token_form(assertion, "system/Patient.r")))
    assert body["scope"] == "system/Patient.r"
    user = fhir.as_(body["access_token"])
    assert user.get(f"Patient/{pid}").status_code == 200
    assert user.get("Patient").status_code == 403  # no s: no search
    assert user.get("Observation?subject=Patient/x").status_code == 403


def test_scopes_outside_the_registration_are_dropped(http, registered, rsa_key):
    body = _ok(http.post("/auth/token", data=token_form(
        sign(rsa_key, "RS384"), "system/Patient.rs system/*.cruds system/Observation.read openid")))
    assert body["scope"] == "system/Patient.rs system/Observation.read"


def test_a_filter_of_the_registration_must_narrow_the_request(http, app, rsa_key, ec_key):
    app.state.api.clients.save(gp_client(rsa_key, ec_key, scopes=("system/Observation.rs?category=laboratory",)))
    _refused(http.post("/auth/token", data=token_form(sign(rsa_key, "RS384"), "system/Observation.rs")),
             400, "invalid_scope")
    body = _ok(http.post("/auth/token", data=token_form(
        sign(rsa_key, "RS384"), "system/Observation.r?category=laboratory&status=final")))
    assert body["scope"] == "system/Observation.r?category=laboratory&status=final"


def test_the_fhir_user_may_be_absolute_on_this_server(http, registered, rsa_key):
    assertion = sign(rsa_key, "RS384", {"fhirUser": "http://127.0.0.1:8080/fhir/Practitioner/p1"})
    claims = _claims(_ok(http.post("/auth/token", data=token_form(assertion)))["access_token"])
    assert claims["fhirUser"] == "Practitioner/p1"


def test_break_glass_token_is_short_and_carries_the_reason(http, registered, ec_key):
    assertion = sign(ec_key, "ES384", {"fhirUser": "Practitioner/dr-khan", "purpose_of_use": "BTG",
                                       "break_glass_reason": "  unconscious in A&E, no consent on file "})
    body = _ok(http.post("/auth/token", data=token_form(assertion)))
    assert body["expires_in"] == 120
    ctx = http.app.state.api.tokens.verify(body["access_token"])
    assert ctx.purpose_of_use == "BTG"
    assert ctx.break_glass_reason == "unconscious in A&E, no consent on file"


def test_exp_exactly_five_minutes_ahead_is_accepted(http, registered, rsa_key):
    _ok(http.post("/auth/token", data=token_form(sign(rsa_key, "RS384", exp_in=MAX_ASSERTION_LIFETIME))))


def test_a_matching_client_id_parameter_is_accepted(http, registered, rsa_key):
    _ok(http.post("/auth/token", data=token_form(sign(rsa_key, "RS384"), client_id=GP)))


# -- refused: the assertion (401 invalid_client) -----------------------------------------------
def _none_alg(claims: dict[str, Any]) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(obj)).rstrip(b"=").decode()
    return f"{part({'alg': 'none', 'typ': 'JWT', 'kid': 'gp-rsa-1'})}.{part(claims)}."


def _base_claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": GP, "sub": GP, "aud": TOKEN_URL, "exp": now + 200, "jti": uuid.uuid4().hex}
    claims.update(changes)
    return claims


@pytest.mark.parametrize("case", [
    "rs256", "hs256", "none", "wrong-aud", "exp-too-far", "expired", "no-exp", "no-jti", "unknown-client",
    "bad-signature", "tampered", "unknown-kid", "no-kid", "iss-not-sub", "rsa-kid-for-es384", "jku-unregistered",
    "nbf-future", "client-id-differs",
])
def test_assertion_refusals(http, registered, rsa_key, ec_key, case):
    other_rsa = RSAKey.generate_key(2048, parameters={"kid": "gp-rsa-1"}, private=True)
    form: dict[str, str]
    if case == "rs256":
        rs256 = RSAKey.import_key(rsa_key.as_dict(private=True))
        form, words = token_form(sign(rs256, "RS256")), "RS384 or ES384"
    elif case == "hs256":
        # the classic confusion: an HMAC keyed with the public key's bytes
        secret = OctKey.import_key(orjson.dumps(public_jwks(rsa_key)))
        secret_assertion = jwt.encode({"alg": "HS256", "kid": "gp-rsa-1"}, _base_claims(), secret,
                                      algorithms=["HS256"])
        form, words = token_form(secret_assertion), "RS384 or ES384"
    elif case == "none":
        form, words = token_form(_none_alg(_base_claims())), "RS384 or ES384"
    elif case == "wrong-aud":
        form, words = token_form(sign(rsa_key, "RS384", {"aud": "http://127.0.0.1:8080/fhir"})), "aud"
    elif case == "exp-too-far":
        form, words = token_form(sign(rsa_key, "RS384", exp_in=MAX_ASSERTION_LIFETIME + CLOCK_SKEW + 60)), \
            "at most 300 seconds"
    elif case == "expired":
        form, words = token_form(sign(rsa_key, "RS384", exp_in=-(CLOCK_SKEW + 60))), "expired"
    elif case == "no-exp":
        form, words = token_form(sign(rsa_key, "RS384", exp_in=None)), "exp"
    elif case == "no-jti":
        form, words = token_form(sign(rsa_key, "RS384", no_jti=True)), "jti"
    elif case == "unknown-client":
        form, words = token_form(sign(rsa_key, "RS384", client_id="nobody")), "not registered"
    elif case == "bad-signature":
        form, words = token_form(sign(other_rsa, "RS384")), "signature"
    elif case == "tampered":
        head, _, sig = sign(rsa_key, "RS384").split(".")
        body = base64.urlsafe_b64encode(orjson.dumps(_base_claims(purpose_of_use="TREAT"))).rstrip(b"=").decode()
        form, words = token_form(f"{head}.{body}.{sig}"), "signature"
    elif case == "unknown-kid":
        form, words = token_form(sign(rsa_key, "RS384", header={"kid": "retired-key"})), "kid"
    elif case == "no-kid":
        head = {"alg": "RS384", "typ": "JWT"}
        form, words = token_form(jwt.encode(head, _base_claims(), rsa_key, algorithms=["RS384"])), "kid"
    elif case == "iss-not-sub":
        form, words = token_form(sign(rsa_key, "RS384", {"sub": "another-client"})), "iss and sub"
    elif case == "rsa-kid-for-es384":
        form, words = token_form(sign(ec_key, "ES384", header={"kid": "gp-rsa-1"})), "cannot sign ES384"
    elif case == "jku-unregistered":
        form, words = token_form(sign(rsa_key, "RS384", header={"jku": "https://attacker.example/jwks"})), "jku"
    elif case == "nbf-future":
        form, words = token_form(sign(rsa_key, "RS384", {"nbf": int(time.time()) + 120})), "nbf"
    else:
        form, words = token_form(sign(rsa_key, "RS384"), client_id="someone-else"), "client_id"
    _refused(http.post("/auth/token", data=form), 401, "invalid_client", words)


def test_a_replayed_assertion_is_refused(http, registered, rsa_key):
    assertion = sign(rsa_key, "RS384")
    _ok(http.post("/auth/token", data=token_form(assertion)))
    _refused(http.post("/auth/token", data=token_form(assertion)), 401, "invalid_client", "used before")
    # the same jti in a newly signed assertion is a replay too
    jti = _claims(assertion)["jti"]
    _refused(http.post("/auth/token", data=token_form(sign(rsa_key, "RS384", {"jti": jti}))),
             401, "invalid_client", "used before")


def test_a_replay_is_refused_by_another_worker(http, registered, app, settings, rsa_key):
    """Two processes share the store, not memory: a registry on its own engine sees the jti."""
    assertion = sign(rsa_key, "RS384")
    _ok(http.post("/auth/token", data=token_form(assertion)))
    other = ClientRegistry(make_engine(settings.database_url))
    try:
        claims = _claims(assertion)
        assert other.use_jti(GP, claims["jti"], claims["exp"], time.time()) is False
        assert other.use_jti(GP, uuid.uuid4().hex, claims["exp"], time.time()) is True
    finally:
        other.engine.dispose()


def test_used_jtis_are_pruned_once_expired(app, registered):
    registry = app.state.api.clients
    now = time.time()
    assert registry.use_jti(GP, "old", int(now) - 10, now)
    assert not registry.use_jti(GP, "old", int(now) - 10, now)
    registry._next_prune = 0.0  # the next call prunes
    assert registry.use_jti(GP, "old", int(now) + 100, now)


def test_a_disabled_client_is_refused(http, registered, app, rsa_key):
    app.state.api.clients.set_status(GP, "disabled")
    _refused(http.post("/auth/token", data=token_form(sign(rsa_key, "RS384"))), 401, "invalid_client",
             "not registered or is disabled")


# -- refused: what the assertion asks for (400) -------------------------------------------------
@pytest.mark.parametrize(("claims", "error", "words"), [
    ({"fhirUser": "RelatedPerson/aunt"}, "unauthorized_client", "fhirUser"),
    ({"fhirUser": "Patient/p1"}, "unauthorized_client", "fhirUser"),
    ({"fhirUser": "https://elsewhere.example/fhir/Practitioner/p1"}, "invalid_request", "fhirUser"),
    ({"fhirUser": "Organization/RT5"}, "invalid_request", "fhirUser"),
    ({"purpose_of_use": "HRESCH"}, "unauthorized_client", "purpose_of_use"),
    ({"fhirUser": "Practitioner/p1", "purpose_of_use": "BTG"}, "invalid_request", "break_glass_reason"),
    ({"fhirUser": "Practitioner/p1", "purpose_of_use": "ETREAT", "break_glass_reason": "   "},
     "invalid_request", "break_glass_reason"),
    ({"purpose_of_use": "BTG", "break_glass_reason": "collapsed"}, "unauthorized_client", "clinician"),
    ({"fhirUser": "Practitioner/p1", "purpose_of_use": "TREAT", "break_glass_reason": "why not"},
     "invalid_request", "only for"),
    ({"break_glass_reason": "no purpose"}, "invalid_request", "only for"),
])
def test_claim_refusals(http, registered, rsa_key, claims, error, words):
    _refused(http.post("/auth/token", data=token_form(sign(rsa_key, "RS384", claims))), 400, error, words)


@pytest.mark.parametrize("scope", ["system/*.cruds", "patient/*.rs", "system/Patient.cud", "openid", "", "Patient.x"])
def test_a_scope_outside_the_registration_is_invalid_scope(http, registered, rsa_key, scope):
    _refused(http.post("/auth/token", data=token_form(sign(rsa_key, "RS384"), scope)), 400, "invalid_scope")


# -- refused: the request ----------------------------------------------------------------------
def test_request_refusals(http, registered, rsa_key):
    form = token_form(sign(rsa_key, "RS384"))
    _refused(http.post("/auth/token", data={**form, "grant_type": "authorization_code"}), 400,
             "unsupported_grant_type")
    _refused(http.post("/auth/token", data={k: v for k, v in form.items() if k != "grant_type"}), 400,
             "invalid_request", "grant_type")
    _refused(http.post("/auth/token", data={k: v for k, v in form.items() if k != "client_assertion"}), 401,
             "invalid_client", "client assertion")
    _refused(http.post("/auth/token", data={**form, "client_assertion_type": "password"}), 401, "invalid_client")
    _refused(http.post("/auth/token", data={**form, "client_assertion": "not.a.jwt"}), 401, "invalid_client",
             "not a signed JWT")
    _refused(http.post("/auth/token", json=form), 400, "invalid_request", "x-www-form-urlencoded")
    twice = "&".join(f"{k}={v}" for k, v in form.items()) + "&scope=system/*.rs"
    _refused(http.post("/auth/token", content=twice,
                       headers={"Content-Type": "application/x-www-form-urlencoded"}),
             400, "invalid_request", "more than once")
    _refused(http.post("/auth/token", content=b"a=" + b"x" * 70_000,
                       headers={"Content-Type": "application/x-www-form-urlencoded"}),
             400, "invalid_request", "too large")


# -- tokens of a client disabled since ----------------------------------------------------------
def test_tokens_stop_working_once_the_client_is_disabled(http, registered, fhir, app, rsa_key):
    token = _ok(http.post("/auth/token", data=token_form(sign(rsa_key, "RS384"))))["access_token"]
    user = fhir.as_(token)
    assert user.get("Patient").status_code == 200
    app.state.api.clients.set_status(GP, "disabled")
    r = user.get("Patient")
    assert r.status_code == 401
    assert "disabled" in r.json()["issue"][0]["diagnostics"]
    app.state.api.clients.set_status(GP, "active")
    assert user.get("Patient").status_code == 200


def test_a_disable_by_another_process_takes_effect_within_the_status_ttl(http, registered, fhir, app, settings,
                                                                          rsa_key):
    registry = app.state.api.clients
    clock = [1000.0]
    registry.clock = lambda: clock[0]
    token = _ok(http.post("/auth/token", data=token_form(sign(rsa_key, "RS384"))))["access_token"]
    user = fhir.as_(token)
    assert user.get("Patient").status_code == 200
    other = ClientRegistry(make_engine(settings.database_url))
    try:
        assert other.set_status(GP, "disabled")
    finally:
        other.engine.dispose()
    assert user.get("Patient").status_code == 200  # still cached
    clock[0] += registry.status_ttl + 0.1
    assert user.get("Patient").status_code == 401


def test_development_tokens_of_unregistered_clients_still_work(fhir, registered, token_for):
    assert fhir.as_(token_for("system/*.rs", client="never-registered")).get("Patient").status_code == 200


def test_a_development_token_naming_a_disabled_client_is_refused(fhir, registered, app, token_for):
    app.state.api.clients.set_status(GP, "disabled")
    assert fhir.as_(token_for("system/*.rs", client=GP)).get("Patient").status_code == 401


# -- the audit seam -----------------------------------------------------------------------------
def test_every_issue_and_refusal_reaches_the_token_event_hook(http, registered, app, rsa_key):
    events: list[tuple[Any, ...]] = []

    def hook(client_id, outcome, reason, request, *, grant=None):  # type: ignore[no-untyped-def]
        events.append((client_id, outcome, reason, request.url.path, grant))

    app.state.api.on_token_event = hook
    assertion = sign(rsa_key, "RS384", {"purpose_of_use": "TREAT"})
    token = _ok(http.post("/auth/token", data=token_form(assertion)))["access_token"]
    http.post("/auth/token", data=token_form(assertion))
    http.post("/auth/token", data=token_form(sign(rsa_key, "RS384", client_id="nobody")))
    app.state.api.clients.set_status(GP, "disabled")
    http.post("/auth/token", data=token_form(sign(rsa_key, "RS384")))
    http.post("/auth/token", data={"grant_type": "password"})
    assert [(e[0], e[1]) for e in events] == [
        (GP, "issued"), (GP, "invalid_client"), ("nobody", "invalid_client"), (GP, "invalid_client"),
        (None, "unsupported_grant_type"),
    ]
    assert events[0][4].scope == "system/*.rs" and events[0][4].purpose_of_use == "TREAT"
    assert "used before" in events[1][2]
    assert events[2][2] == "the client is not registered"
    assert events[3][2] == "the client is disabled"
    assert all(e[3] == "/auth/token" for e in events)
    assert all(assertion not in str(e) and token not in str(e) for e in events)


# -- discovery ----------------------------------------------------------------------------------
def test_smart_configuration_names_the_token_endpoint(http):
    r = http.get("/fhir/.well-known/smart-configuration")
    assert r.status_code == 200
    conf = r.json()
    assert conf["token_endpoint"] == TOKEN_URL
    assert conf["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert conf["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert conf["grant_types_supported"] == ["client_credentials"]
    assert {"client-confidential-asymmetric", "permission-v2", "permission-v1"} <= set(conf["capabilities"])
    assert "system/*.rs" in conf["scopes_supported"]


def test_rsa_and_ec_keys_of_one_client_are_chosen_by_kid(http, app, rsa_key, ec_key):
    second_ec = ECKey.generate_key("P-384", parameters={"kid": "gp-ec-2"}, private=True)
    app.state.api.clients.save(gp_client(rsa_key, ec_key, jwks=public_jwks(rsa_key, ec_key, second_ec)))
    for key, alg in ((rsa_key, "RS384"), (ec_key, "ES384"), (second_ec, "ES384")):
        _ok(http.post("/auth/token", data=token_form(sign(key, alg))))
