"""Access tokens: JWTs the server signs (RS256) and verifies on every request.

A token names the client, its organisation (ODS code), the user it acts for
(``fhirUser``), the purpose of use and its SMART scopes; :func:`context_from_claims`
turns those claims into the :class:`AccessContext` the repository works with. Verified
tokens are remembered until they expire, so a busy client pays for the signature check
once, not per request.

When the service is given ``client_disabled`` (the client registry's cached status check),
every verification, cached or not, also refuses a token whose client has since been
disabled. Tokens naming a client that was never registered (the development tokens of
``carebridge token``) are not refused by it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from server.auth.keys import signing_key
from server.auth.scopes import parse_scopes
from server.consent.context import AccessContext
from server.fhir.errors import Unauthorized

ISSUER = "carebridge"
AUDIENCE = "carebridge-fhir"
_CACHE_LIMIT = 10_000


class TokenService:
    def __init__(self, var_dir: Path, audience: str = AUDIENCE,
                 client_disabled: Callable[[str], bool] | None = None) -> None:
        self.key: RSAKey = signing_key(var_dir)
        self.audience = audience
        self.client_disabled = client_disabled
        self._verified: dict[str, tuple[float, AccessContext]] = {}

    def issue(
        self,
        client_id: str,
        scope: str,
        *,
        lifetime: int = 300,
        fhir_user: str | None = None,
        organization: str | None = None,
        purpose_of_use: str | None = None,
        patient: str | None = None,
        break_glass_reason: str | None = None,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER, "aud": self.audience, "sub": client_id, "client_id": client_id,
            "scope": scope, "iat": now, "exp": now + lifetime, "jti": uuid.uuid4().hex,
        }
        for name, value in (("fhirUser", fhir_user), ("organization", organization),
                            ("purpose_of_use", purpose_of_use), ("patient", patient),
                            ("break_glass_reason", break_glass_reason)):
            if value:
                claims[name] = value
        return jwt.encode({"alg": "RS256", "typ": "JWT"}, claims, self.key)

    def verify(self, token: str, request_id: str | None = None) -> AccessContext:
        now = time.time()
        hit = self._verified.get(token)
        if hit is not None and hit[0] > now:
            ctx = hit[1]
        else:
            ctx, exp = self._verify(token, now)
            if len(self._verified) >= _CACHE_LIMIT:
                self._verified = {k: v for k, v in self._verified.items() if v[0] > now}
                if len(self._verified) >= _CACHE_LIMIT:
                    self._verified.clear()
            self._verified[token] = (exp, ctx)
        if self.client_disabled is not None and self.client_disabled(ctx.client_id):
            raise Unauthorized("the bearer token's client has been disabled")
        if request_id is not None:
            ctx = replace(ctx, request_id=request_id)
        return ctx

    def _verify(self, token: str, now: float) -> tuple[AccessContext, float]:
        try:
            decoded = jwt.decode(token, self.key, algorithms=["RS256"])
        except (JoseError, ValueError) as exc:
            raise Unauthorized(f"the bearer token is not valid: {exc}") from None
        claims = decoded.claims
        registry = jwt.JWTClaimsRegistry(
            now=int(now),
            leeway=30,
            iss={"essential": True, "value": ISSUER},
            aud={"essential": True, "value": self.audience},
            exp={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise Unauthorized(f"the bearer token is not valid: {exc}") from None
        return context_from_claims(claims), float(claims["exp"])


def context_from_claims(claims: dict[str, Any]) -> AccessContext:
    fhir_user = claims.get("fhirUser")
    patient = claims.get("patient")
    if patient is None and isinstance(fhir_user, str) and fhir_user.startswith("Patient/"):
        patient = fhir_user.split("/", 1)[1]
    return AccessContext(
        client_id=str(claims.get("client_id") or claims.get("sub") or ""),
        scopes=parse_scopes(str(claims.get("scope", ""))),
        organization=claims.get("organization"),
        fhir_user=fhir_user,
        purpose_of_use=claims.get("purpose_of_use"),
        break_glass_reason=claims.get("break_glass_reason"),
        patient=patient,
    )
