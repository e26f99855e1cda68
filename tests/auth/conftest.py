"""Fixtures for the Backend Services tests: client keys made here (RS384 and ES384), a
registered GP system, and client assertions signed as a real client would sign them."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from server.auth.clients import Client
from tests.conftest import BASE

TOKEN_URL = f"{BASE}/auth/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
GP = "gp-system"
#: a system of the trust (RT5), the custodian: its staff see records for direct care
TRUST = "trust-epr"


@pytest.fixture(scope="session")
def rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "gp-rsa-1"}, private=True)


@pytest.fixture(scope="session")
def ec_key() -> ECKey:
    return ECKey.generate_key("P-384", parameters={"kid": "gp-ec-1"}, private=True)


def public_jwks(*keys: Any) -> dict[str, Any]:
    return {"keys": [k.as_dict(private=False) for k in keys]}


def gp_client(rsa_key: RSAKey, ec_key: ECKey, **changes: Any) -> Client:
    fields: dict[str, Any] = {
        "client_id": GP, "name": "Practice clinical system", "organization": "C82040",
        "scopes": ("system/*.rs", "user/Patient.rs"),
        "purposes": ("TREAT", "CAREMGT", "BTG", "ETREAT"),
        "may_assert": ("Practitioner/*",),
        "jwks": public_jwks(rsa_key, ec_key),
    }
    fields.update(changes)
    return Client(**fields)


def sign(key: Any, alg: str, claims: dict[str, Any] | None = None, *, client_id: str = GP,
         header: dict[str, Any] | None = None, exp_in: float | None = 240, **omit: bool) -> str:
    """A client assertion: iss = sub = client_id, aud = the token URL, exp, a fresh jti."""
    now = int(time.time())
    payload: dict[str, Any] = {"iss": client_id, "sub": client_id, "aud": TOKEN_URL, "jti": uuid.uuid4().hex,
                               "iat": now}
    if exp_in is not None:
        payload["exp"] = int(now + exp_in)
    payload.update(claims or {})
    for name, drop in omit.items():
        if drop:
            payload.pop(name.removeprefix("no_"), None)
    head = {"alg": alg, "typ": "JWT", "kid": key.kid, **(header or {})}
    return jwt.encode(head, payload, key, algorithms=[alg])


def token_form(assertion: str, scope: str = "system/*.rs", **extra: str) -> dict[str, str]:
    return {"grant_type": "client_credentials", "scope": scope,
            "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion, **extra}


@pytest.fixture
def registered(app: Any, rsa_key: RSAKey, ec_key: ECKey) -> Client:
    client = gp_client(rsa_key, ec_key)
    app.state.api.clients.save(client)
    return client


@pytest.fixture
def trust_registered(app: Any, rsa_key: RSAKey, ec_key: ECKey) -> Client:
    client = gp_client(rsa_key, ec_key, client_id=TRUST, name="Trust clinical system", organization="RT5")
    app.state.api.clients.save(client)
    return client


@pytest.fixture
def http(app: Any) -> Iterator[TestClient]:
    with TestClient(app, base_url=BASE) as client:
        yield client
