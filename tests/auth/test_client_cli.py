"""``carebridge client add|list|disable|enable|keygen`` through the command's main function,
against a SQLite file or the PostgreSQL test database, and a key made by keygen used end to
end against the app."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from joserfc.jwk import ECKey, RSAKey

from carebridge.cli import main
from carebridge.config import Settings
from server.api.app import create_app
from server.auth.clients import ClientRegistry
from server.store.engine import make_engine
from tests.auth.conftest import public_jwks, sign, token_form
from tests.conftest import BASE


def _add(url: str, jwks: Path, *extra: str) -> int:
    return main(["client", "add", "--id", "carer-portal", "--name", "Carers' portal", "--jwks", str(jwks),
                 "--organization", "rt5", "--scope", "user/Patient.rs user/CarePlan.rs", "--purpose", "FAMRQT",
                 "--purpose", "CAREMGT", "--may-assert", "RelatedPerson/*", "--database-url", url, *extra])


@pytest.fixture
def jwks_file(tmp_path: Path, ec_key: ECKey) -> Path:
    path = tmp_path / "jwks.json"
    path.write_bytes(orjson.dumps(public_jwks(ec_key)))
    return path


def test_add_list_disable_enable(backend: str, jwks_file: Path, capsys: Any) -> None:
    assert _add(backend, jwks_file) == 0
    assert capsys.readouterr().out.strip() == "client carer-portal registered"
    assert main(["client", "list", "--database-url", backend]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["client", "status", "org", "name", "scopes", "purposes", "may", "assert", "keys",
                                "updated"]
    row = lines[1]
    for cell in ("carer-portal", "active", "RT5", "Carers' portal", "user/Patient.rs user/CarePlan.rs",
                 "FAMRQT CAREMGT", "RelatedPerson/*", "gp-ec-1"):
        assert cell in row

    assert main(["client", "disable", "carer-portal", "--database-url", backend]) == 0
    assert "disabled" in capsys.readouterr().out
    # re-adding updates the registration and keeps it disabled
    assert main(["client", "add", "--id", "carer-portal", "--name", "Carer portal v2", "--jwks", str(jwks_file),
                 "--organization", "RT5", "--scope", "user/Patient.r", "--database-url", backend]) == 0
    assert capsys.readouterr().out.strip() == "client carer-portal updated"
    engine = make_engine(backend)
    try:
        client = ClientRegistry(engine).get("carer-portal")
        assert client is not None
        assert (client.name, client.status, client.scopes, client.purposes, client.may_assert) == (
            "Carer portal v2", "disabled", ("user/Patient.r",), (), ())
        assert client.updated >= client.created
    finally:
        engine.dispose()
    assert main(["client", "enable", "carer-portal", "--database-url", backend]) == 0
    assert main(["client", "list", "--json", "--database-url", backend]) == 0
    listed = orjson.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert [(c["client_id"], c["status"]) for c in listed] == [("carer-portal", "active")]


def test_disable_of_an_unknown_client_fails(backend: str, capsys: Any) -> None:
    assert main(["client", "disable", "nobody", "--database-url", backend]) == 1
    assert "no client nobody" in capsys.readouterr().out


@pytest.mark.parametrize(("case", "words"), [
    ("private", "holds a private key"),
    ("no-kid", "no 'kid'"),
    ("p-256", "P-384"),
    ("es256", "signs ES384"),
    ("encryption", "not a signing key"),
])
def test_add_refuses_a_bad_jwks(tmp_path: Path, ec_key: ECKey, capsys: Any, case: str, words: str) -> None:
    jwk = ec_key.as_dict(private=case == "private")
    if case == "no-kid":
        jwk.pop("kid")
    elif case == "p-256":
        jwk = ECKey.generate_key("P-256", parameters={"kid": "small"}).as_dict(private=False)
    elif case == "es256":
        jwk["alg"] = "ES256"
    elif case == "encryption":
        jwk["use"] = "enc"
    path = tmp_path / "bad.json"
    path.write_bytes(orjson.dumps({"keys": [jwk]}))
    assert _add(f"sqlite:///{tmp_path / 's.sqlite'}", path) == 1
    assert words in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore:Key size should be:joserfc.errors.SecurityWarning")
def test_add_refuses_a_short_rsa_key(tmp_path: Path, capsys: Any) -> None:
    short = RSAKey.generate_key(1024, parameters={"kid": "old"}, private=True)
    path = tmp_path / "short.json"
    path.write_bytes(orjson.dumps(public_jwks(short)))
    assert _add(f"sqlite:///{tmp_path / 's.sqlite'}", path) == 1
    assert "2048 bits" in capsys.readouterr().out


@pytest.mark.parametrize(("flag", "value", "words"), [
    ("--scope", "everything", "not a SMART resource scope"),
    ("--purpose", "SNOOP", "not a known purpose"),
    ("--may-assert", "Organization/*", "may-assert"),
    ("--organization", "not an ods!", "ODS code"),
])
def test_add_refuses_bad_fields(tmp_path: Path, jwks_file: Path, capsys: Any, flag: str, value: str,
                                words: str) -> None:
    assert _add(f"sqlite:///{tmp_path / 's.sqlite'}", jwks_file, flag, value) == 1
    assert words in capsys.readouterr().out


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_keygen_key_gets_a_token(tmp_path: Path, var_dir: Path, monkeypatch: Any, capsys: Any, alg: str) -> None:
    keys = tmp_path / "var"
    monkeypatch.setenv("CAREBRIDGE_VAR_DIR", str(keys))
    assert main(["client", "keygen", "--alg", alg]) == 0
    out = capsys.readouterr().out
    kid = out.split()[1]
    folder = keys / "client-keys" / kid
    private, public = folder / "private-key.pem", folder / "jwks.json"
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    jwks = orjson.loads(public.read_bytes())
    assert [k["kid"] for k in jwks["keys"]] == [kid]
    assert jwks["keys"][0]["alg"] == alg
    assert "d" not in jwks["keys"][0]
    assert main(["client", "keygen", "--alg", alg, "--out", str(folder)]) == 1  # never overwrites

    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    assert main(["client", "add", "--id", "gp-system", "--jwks", str(public), "--organization", "C82040",
                 "--scope", "system/*.rs", "--database-url", url]) == 0
    key = (RSAKey if alg == "RS384" else ECKey).import_key(private.read_bytes(), parameters={"kid": kid})
    app = create_app(Settings(database_url=url, var_dir=var_dir))
    with TestClient(app, base_url=BASE) as http:
        r = http.post("/auth/token", data=token_form(sign(key, alg)))
    assert r.status_code == 200, r.text
    assert r.json()["scope"] == "system/*.rs"
