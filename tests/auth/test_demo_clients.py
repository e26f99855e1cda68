"""The demo clients, as the README's "Who sees what" uses them: registered once by loading
the demo data (twice), each signing its assertion with ``carebridge client assertion`` from
its development key under var/, exchanging it at /auth/token over HTTP, and seeing what
the README says that caller sees; and the command's refusals."""

from __future__ import annotations

import base64
import os
import shutil
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from joserfc.jwk import ECKey

from carebridge.cli import main
from carebridge.config import Settings
from carebridge.demo import load_demo_data
from carebridge.demo.clients import DEMO_CLIENTS, demo_alg, register_demo_clients
from server.api.app import create_app
from server.auth.client_keys import JWKS_FILE, PRIVATE_KEY_FILE
from server.auth.clients import Client, ClientRegistry
from server.store.engine import make_engine, migrate
from tests.auth.conftest import public_jwks, token_form
from tests.conftest import BASE, Fhir

DEMO_IDS = sorted(d.client_id for d in DEMO_CLIENTS)


@contextmanager
def _registry(url: str) -> Iterator[ClientRegistry]:
    engine = make_engine(url)
    try:
        yield ClientRegistry(engine)
    finally:
        engine.dispose()


def _snapshot(url: str, var: Path) -> tuple[list[tuple[Any, ...]], dict[str, bytes]]:
    """What loading may change: each registration with its timestamps, and every key file."""
    with _registry(url) as registry:
        clients = [(c.client_id, c.status, c.jwks, c.created, c.updated) for c in registry.all()]
    files = {str(p.relative_to(var)): p.read_bytes() for p in sorted((var / "demo-clients").rglob("*")) if p.is_file()}
    return clients, files


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A store and var dir of this module's own with the demo data loaded once."""
    var = tmp_path_factory.mktemp("demo-var")
    settings = Settings(database_url=f"sqlite:///{var / 'carebridge.sqlite'}", var_dir=var,
                        host="127.0.0.1", port=8080)
    assert load_demo_data(settings) > 0
    return {"settings": settings, "url": settings.database_url, "var": var,
            "after_first_load": _snapshot(settings.database_url, var)}


@pytest.fixture
def cli_env(demo: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The command sees the demo's var dir and the default host and port, as after ``make run``."""
    monkeypatch.setenv("CAREBRIDGE_VAR_DIR", str(demo["var"]))
    for name in ("CAREBRIDGE_HOST", "CAREBRIDGE_PORT", "CAREBRIDGE_PUBLIC_BASE_URL", "CAREBRIDGE_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    return demo


@pytest.fixture(scope="module")
def http(demo: dict[str, Any]) -> Iterator[TestClient]:
    with TestClient(create_app(demo["settings"]), base_url=BASE) as client:
        yield client


def assertion(capsys: Any, url: str, client_id: str, *options: str) -> str:
    """The assertion ``carebridge client assertion`` prints (and nothing else on stdout)."""
    capsys.readouterr()
    assert main(["client", "assertion", "--id", client_id, *options, "--database-url", url]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.count(".") == 2, out
    return out.strip()


def _part(jwt_text: str, i: int) -> dict[str, Any]:
    part = jwt_text.split(".")[i]
    decoded: dict[str, Any] = orjson.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def _ids(bundle: dict[str, Any]) -> set[str]:
    return {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle.get("entry", [])}


# -- registration ------------------------------------------------------------------------------
def test_loading_twice_registers_each_demo_client_once_with_one_development_key(demo: dict[str, Any]) -> None:
    clients, files = demo["after_first_load"]
    assert [c[0] for c in clients] == DEMO_IDS
    assert all(status == "active" and len(jwks["keys"]) == 1 for _, status, jwks, _, _ in clients)
    assert sorted(files) == sorted(f"demo-clients/{cid}/{name}" for cid in DEMO_IDS
                                   for name in (JWKS_FILE, PRIVATE_KEY_FILE))
    for cid, _, jwks, _, _ in clients:
        folder = demo["var"] / "demo-clients" / cid
        assert stat.S_IMODE(os.stat(folder / PRIVATE_KEY_FILE).st_mode) == 0o600
        assert orjson.loads((folder / JWKS_FILE).read_bytes()) == jwks  # the registered key is the file's
        assert "d" not in jwks["keys"][0]

    assert load_demo_data(demo["settings"]) == 0
    assert _snapshot(demo["url"], demo["var"]) == (clients, files)  # nothing rewritten, no new key


def test_a_disabled_demo_client_stays_disabled_and_a_lost_key_is_replaced(demo: dict[str, Any],
                                                                          tmp_path: Path) -> None:
    var = tmp_path / "var"
    shutil.copytree(demo["var"] / "demo-clients", var / "demo-clients")
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    engine = make_engine(url)
    migrate(engine)
    registry = ClientRegistry(engine)
    try:
        assert sorted(register_demo_clients(var, registry)) == DEMO_IDS  # a new store: all registered
        registry.set_status("demo-carer-portal", "disabled")
        assert register_demo_clients(var, registry) == []
        carer = registry.get("demo-carer-portal")
        assert carer is not None and carer.status == "disabled"

        old = registry.get("demo-gp-c82001")
        shutil.rmtree(var / "demo-clients" / "demo-gp-c82001")
        assert register_demo_clients(var, registry) == ["demo-gp-c82001"]
        new = registry.get("demo-gp-c82001")
        assert old is not None and new is not None and new.kids() != old.kids()
        assert (var / "demo-clients" / "demo-gp-c82001" / PRIVATE_KEY_FILE).exists()

        (var / "demo-clients" / "demo-la-leicester" / JWKS_FILE).unlink()  # the private key is the truth
        assert register_demo_clients(var, registry) == []
        assert (var / "demo-clients" / "demo-la-leicester" / JWKS_FILE).exists()
    finally:
        engine.dispose()


# -- each kind of caller, through the real flow --------------------------------------------------
#: (client, scope, assertion options, what the README says it sees)
CALLERS: list[tuple[str, str, list[str], str]] = [
    ("demo-trust-epr", "user/*.rs", ["--fhir-user", "Practitioner/kw-okafor", "--purpose-of-use", "TREAT"],
     "key worker"),
    ("demo-gp-c82001", "user/*.rs", ["--fhir-user", "Practitioner/gp-patel", "--purpose-of-use", "TREAT"], "GP"),
    ("demo-la-leicester", "system/*.rs", ["--purpose-of-use", "TREAT"], "council"),
    ("demo-carer-portal", "user/*.rs", ["--fhir-user", "RelatedPerson/carer-alex-taylor"], "carer"),
    ("demo-carer-portal", "user/*.rs", ["--fhir-user", "RelatedPerson/carer-raj-shah"], "relative"),
    ("demo-service-user-app", "patient/*.rs", ["--fhir-user", "Patient/sam-taylor"], "service user"),
    ("demo-gp-c82002", "user/*.rs", ["--fhir-user", "Practitioner/gp-hughes", "--purpose-of-use", "BTG",
                                     "--break-glass-reason", "collapsed in the surgery"], "break-glass"),
    ("demo-trust-audit", "system/AuditEvent.rs", [], "auditor"),
]


def _token(http: TestClient, signed: str, scope: str) -> dict[str, Any]:
    r = http.post("/auth/token", data=token_form(signed, scope))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert body["scope"] == scope
    return body


@pytest.mark.parametrize(("client_id", "scope", "options", "caller"), CALLERS, ids=[c[3] for c in CALLERS])
def test_each_demo_client_gets_a_token_that_sees_what_the_readme_says(
    cli_env: dict[str, Any], http: TestClient, capsys: Any, client_id: str, scope: str, options: list[str],
    caller: str,
) -> None:
    signed = assertion(capsys, cli_env["url"], client_id, *options)
    assert _part(signed, 0)["alg"] == demo_alg(client_id)
    body = _token(http, signed, scope)
    api = Fhir(http, body["access_token"])

    def total(query: str) -> int:
        r = api.get(query)
        assert r.status_code == 200, r.text
        return int(r.json()["total"])

    def status(query: str) -> int:
        return int(api.get(query).status_code)

    if caller == "key worker":  # all five service users
        assert total("Patient?_summary=count") == 5
    elif caller == "GP":  # Sam only: Priya refused, Daniel has no Consent
        assert total("Patient?_summary=count") == 1
        assert (status("Patient/sam-taylor"), status("Patient/priya-shah"), status("Patient/daniel-brooks")) == (
            200, 404, 404)
    elif caller == "council":  # Jo's referral, by her Consent
        assert _ids(api.get("ServiceRequest").json()) == {"ServiceRequest/ref-jo-1"}
        assert status("Patient/sam-taylor") == 404
    elif caller == "carer":  # Sam's care plan, nothing else
        assert _ids(api.get("CarePlan").json()) == {"CarePlan/sicp-sam"}
        assert status("Patient/sam-taylor") == 404
    elif caller == "relative":  # Priya does not want them involved
        assert status("Patient/priya-shah") == 404
        assert total("Patient?_summary=count") == 0
    elif caller == "service user":  # his own record, and no one else's
        r = api.get("Patient/sam-taylor/$everything?_count=200")
        assert r.status_code == 200, r.text
        assert {i for i in _ids(r.json()) if i.startswith("Patient/")} == {"Patient/sam-taylor"}
        assert status("Patient/priya-shah") == 404
    elif caller == "break-glass":  # Priya's record opened, for two minutes, and said so
        assert body["expires_in"] == 120
        r = api.get("Patient/priya-shah")
        assert r.status_code == 200, r.text
        assert "break-glass" in r.headers["x-break-glass"]
    elif caller == "auditor":  # the audit trail, which nobody else sees
        deadline = time.monotonic() + 5
        while total("AuditEvent?_summary=count") == 0 and time.monotonic() < deadline:
            time.sleep(0.1)  # events are written in batches, off the request path
        assert total("AuditEvent?_summary=count") > 0
        gp = _token(http, assertion(capsys, cli_env["url"], "demo-gp-c82001", "--fhir-user",
                                    "Practitioner/gp-patel", "--purpose-of-use", "TREAT"), "user/*.rs")
        assert Fhir(http, gp["access_token"]).get("AuditEvent?_summary=count").json()["total"] == 0
    else:
        raise AssertionError(caller)


@pytest.mark.parametrize(("client_id", "options", "error"), [
    ("demo-gp-c82001", ["--fhir-user", "Practitioner/gp-hughes"], "may not act for that fhirUser"),
    ("demo-carer-portal", ["--fhir-user", "RelatedPerson/carer-alex-taylor", "--purpose-of-use", "BTG",
                           "--break-glass-reason", "worried"], "not registered for that purpose_of_use"),
    ("demo-service-user-app", ["--fhir-user", "Practitioner/kw-okafor"], "may not act for that fhirUser"),
])
def test_a_demo_client_is_only_who_its_registration_says(cli_env: dict[str, Any], http: TestClient, capsys: Any,
                                                        client_id: str, options: list[str], error: str) -> None:
    r = http.post("/auth/token", data=token_form(assertion(capsys, cli_env["url"], client_id, *options), "user/*.rs"))
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "unauthorized_client"
    assert error in r.json()["error_description"]


# -- the command ---------------------------------------------------------------------------------
def test_the_assertion_names_the_client_its_key_and_the_token_endpoint(cli_env: dict[str, Any], capsys: Any) -> None:
    signed = assertion(capsys, cli_env["url"], "demo-gp-c82002", "--fhir-user", "Practitioner/gp-hughes",
                       "--purpose-of-use", "ETREAT", "--break-glass-reason", "unconscious", "--lifetime", "60")
    header, claims = _part(signed, 0), _part(signed, 1)
    with _registry(cli_env["url"]) as registry:
        client = registry.get("demo-gp-c82002")
    assert client is not None
    assert header == {"alg": "ES384", "kid": client.kids()[0], "typ": "JWT"}
    assert (claims["iss"], claims["sub"], claims["aud"]) == ("demo-gp-c82002", "demo-gp-c82002",
                                                              f"{BASE}/auth/token")
    assert claims["exp"] - claims["iat"] == 60
    assert (claims["fhirUser"], claims["purpose_of_use"], claims["break_glass_reason"]) == (
        "Practitioner/gp-hughes", "ETREAT", "unconscious")
    other = assertion(capsys, cli_env["url"], "demo-trust-epr", "--aud", "https://carebridge.example/auth/token")
    assert _part(other, 0)["alg"] == "RS384"
    assert _part(other, 1)["aud"] == "https://carebridge.example/auth/token"
    assert "fhirUser" not in _part(other, 1)
    assert _part(other, 1)["jti"] != claims["jti"]


def test_the_default_aud_follows_the_configured_base(cli_env: dict[str, Any], capsys: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAREBRIDGE_PUBLIC_BASE_URL", "https://fhir.example.nhs.uk")
    signed = assertion(capsys, cli_env["url"], "demo-la-leicester")
    assert _part(signed, 1)["aud"] == "https://fhir.example.nhs.uk/auth/token"


def _refused(capsys: Any, url: str, *args: str) -> str:
    capsys.readouterr()
    assert main(["client", "assertion", *args, "--database-url", url]) == 1
    out = capsys.readouterr()
    assert out.out == ""  # nothing a shell would take for an assertion
    return str(out.err)


def test_an_unknown_client_is_refused_saying_so(cli_env: dict[str, Any], capsys: Any) -> None:
    err = _refused(capsys, cli_env["url"], "--id", "nobody")
    assert "no client nobody is registered" in err


def test_a_missing_or_unregistered_key_is_refused_saying_so(cli_env: dict[str, Any], capsys: Any,
                                                            tmp_path: Path) -> None:
    ec = ECKey.generate_key("P-384", parameters={"kid": "elsewhere-1"}, private=True)
    with _registry(cli_env["url"]) as registry:
        registry.save(Client(client_id="gp-elsewhere", name="Practice system elsewhere", organization="C82040",
                             scopes=("system/*.rs",), jwks=public_jwks(ec)))
    err = _refused(capsys, cli_env["url"], "--id", "gp-elsewhere")
    assert "no private key for client gp-elsewhere" in err
    assert f"{cli_env['var']}/client-keys/gp-elsewhere/private-key.pem" in err and "--key" in err

    err = _refused(capsys, cli_env["url"], "--id", "gp-elsewhere", "--key", str(tmp_path / "missing.pem"))
    assert f"no private key at {tmp_path / 'missing.pem'}" in err

    not_a_key = tmp_path / "notes.pem"
    not_a_key.write_text("hello")
    assert "is not an RSA or EC private key" in _refused(capsys, cli_env["url"], "--id", "gp-elsewhere",
                                                         "--key", str(not_a_key))
    public_only = tmp_path / "public.pem"
    public_only.write_bytes(ec.as_pem(private=False))
    assert "holds a public key" in _refused(capsys, cli_env["url"], "--id", "gp-elsewhere",
                                            "--key", str(public_only))

    someone_elses = cli_env["var"] / "demo-clients" / "demo-trust-epr" / PRIVATE_KEY_FILE
    err = _refused(capsys, cli_env["url"], "--id", "gp-elsewhere", "--key", str(someone_elses))
    assert "is not one of client gp-elsewhere's registered keys (elsewhere-1)" in err

    mine = tmp_path / "mine.pem"
    mine.write_bytes(ec.as_pem(private=True))
    signed = assertion(capsys, cli_env["url"], "gp-elsewhere", "--key", str(mine))
    assert _part(signed, 0)["kid"] == "elsewhere-1"  # the kid it is registered under, not the thumbprint


def test_lifetime_beyond_what_the_endpoint_accepts_is_refused(cli_env: dict[str, Any], capsys: Any) -> None:
    for lifetime in ("301", "0"):
        err = _refused(capsys, cli_env["url"], "--id", "demo-trust-epr", "--lifetime", lifetime)
        assert "--lifetime must be 1 to 300 seconds" in err


def test_a_disabled_client_is_warned_of(cli_env: dict[str, Any], http: TestClient, capsys: Any) -> None:
    registry = http.app.state.api.clients  # type: ignore[attr-defined]  # the app's: no status cache to wait out
    registry.set_status("demo-trust-audit", "disabled")
    try:
        capsys.readouterr()
        assert main(["client", "assertion", "--id", "demo-trust-audit", "--database-url", cli_env["url"]]) == 0
        out = capsys.readouterr()
        assert "client demo-trust-audit is disabled" in out.err
        r = http.post("/auth/token", data=token_form(out.out.strip(), "system/AuditEvent.rs"))
        assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    finally:
        registry.set_status("demo-trust-audit", "active")
