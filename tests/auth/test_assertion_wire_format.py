"""Assertions built byte by byte with the ``cryptography`` library alone (no JOSE library on
the client side), so that the server is shown to read the JWS wire format itself and not
only what its own library writes: RS384 (PKCS#1 v1.5, SHA-384) and ES384 (raw r||s, 48
bytes each). Also: concurrent uses of one jti, of which exactly one may win."""

from __future__ import annotations

import base64
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from server.auth.clients import Client
from tests.auth.conftest import TOKEN_URL, token_form


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int(n: int, size: int | None = None) -> str:
    return _b64(n.to_bytes(size or (n.bit_length() + 7) // 8, "big"))


def _keys() -> tuple[Any, Any, dict[str, Any]]:
    rsa_private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_private = ec.generate_private_key(ec.SECP384R1())
    rn = rsa_private.public_key().public_numbers()
    en = ec_private.public_key().public_numbers()
    jwks = {"keys": [
        {"kty": "RSA", "kid": "wire-rsa", "n": _int(rn.n), "e": _int(rn.e)},
        {"kty": "EC", "kid": "wire-ec", "crv": "P-384", "x": _int(en.x, 48), "y": _int(en.y, 48)},
    ]}
    return rsa_private, ec_private, jwks


def _assertion(private: Any, alg: str, kid: str, client_id: str) -> str:
    now = int(time.time())
    head = _b64(orjson.dumps({"alg": alg, "kid": kid, "typ": "JWT"}))
    body = _b64(orjson.dumps({"iss": client_id, "sub": client_id, "aud": TOKEN_URL, "exp": now + 120,
                              "jti": uuid.uuid4().hex}))
    signing_input = f"{head}.{body}".encode()
    if alg == "RS384":
        signature = private.sign(signing_input, padding.PKCS1v15(), hashes.SHA384())
    else:
        r, s = decode_dss_signature(private.sign(signing_input, ec.ECDSA(hashes.SHA384())))
        signature = r.to_bytes(48, "big") + s.to_bytes(48, "big")
    return f"{head}.{body}.{_b64(signature)}"


@pytest.mark.parametrize(("alg", "kid"), [("RS384", "wire-rsa"), ("ES384", "wire-ec")])
def test_hand_built_assertions_are_accepted(http, app, alg, kid):
    rsa_private, ec_private, jwks = _keys()
    app.state.api.clients.save(Client("wire-client", "wire", "RT5", ("system/*.rs",), jwks=jwks))
    private = rsa_private if alg == "RS384" else ec_private
    r = http.post("/auth/token", data=token_form(_assertion(private, alg, kid, "wire-client")))
    assert r.status_code == 200, r.text
    # a DER-encoded ECDSA signature (what cryptography returns) is not JWS: refused
    if alg == "ES384":
        head, body, _ = _assertion(private, alg, kid, "wire-client").split(".")
        der = ec_private.sign(f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA384()))
        r = http.post("/auth/token", data=token_form(f"{head}.{body}.{_b64(der)}"))
        assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_one_jti_used_at_once_by_many_wins_once(app):
    registry = app.state.api.clients
    jti, now = uuid.uuid4().hex, time.time()
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: registry.use_jti("racer", jti, int(now) + 300, now), range(16)))
    assert results.count(True) == 1
