"""The whole Backend Services flow driven by authlib's own client (httpx, private_key_jwt),
as a third-party client would run it: fetch a token, then read /fhir with it.

authlib's ``PrivateKeyJWT`` signs assertions that expire an hour ahead and keeps the
``jti`` it generates in the ``claims`` it was given, so a SMART client needs a fresh
``exp`` (and jti) per assertion; the second test shows the server refusing the default.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import anyio
import httpx
import pytest
from authlib.oauth2.rfc7523 import PrivateKeyJWT

with warnings.catch_warnings():  # authlib would rather have the httpx2 fork; httpx is what we ship
    warnings.simplefilter("ignore")
    from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError

from tests.auth.conftest import GP, TOKEN_URL, TRUST
from tests.conftest import BASE, patient


class SmartPrivateKeyJWT(PrivateKeyJWT):  # type: ignore[misc]
    """private_key_jwt with the SMART limit: each assertion expires four minutes ahead."""

    def sign(self, auth: Any, token_endpoint: str) -> Any:
        self.claims = {"exp": int(time.time()) + 240}
        return super().sign(auth, token_endpoint)


async def _flow(app: Any, key: Any, method: PrivateKeyJWT, client_id: str) -> tuple[dict[str, Any], httpx.Response]:
    async with AsyncOAuth2Client(
        client_id=client_id, client_secret=key, token_endpoint_auth_method="private_key_jwt", scope="system/*.rs",
        transport=httpx.ASGITransport(app=app), base_url=BASE,
    ) as client:
        client.register_client_auth_method(method)
        token = await client.fetch_token(TOKEN_URL, grant_type="client_credentials")
        second = await client.fetch_token(TOKEN_URL, grant_type="client_credentials")  # a fresh jti each time
        assert second["access_token"] != token["access_token"]
        r = await client.get("/fhir/Patient", headers={"Accept": "application/fhir+json"})
        return dict(token), r


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_authlib_client_fetches_a_token_and_reads(app, trust_registered, fhir, rsa_key, ec_key, alg):
    fhir.create(patient())
    key = rsa_key if alg == "RS384" else ec_key
    method = SmartPrivateKeyJWT(TOKEN_URL, alg=alg, headers={"kid": key.kid})
    token, r = anyio.run(_flow, app, key, method, TRUST)
    assert token["token_type"] == "bearer"
    assert token["scope"] == "system/*.rs"
    assert 0 < token["expires_in"] <= 300
    assert r.status_code == 200, r.text
    assert r.json()["total"] == 1


def test_authlib_default_assertion_lifetime_is_refused(app, registered, rsa_key):
    method = PrivateKeyJWT(TOKEN_URL, alg="RS384", headers={"kid": rsa_key.kid})
    with pytest.raises(OAuthError) as caught:
        anyio.run(_flow, app, rsa_key, method, GP)
    assert caught.value.error == "invalid_client"
    assert "at most 300 seconds" in caught.value.description
