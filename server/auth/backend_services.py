"""SMART Backend Services: a client's signed assertion in, the server's access token out.

:meth:`BackendServices.grant` takes the form of a ``POST /auth/token`` request
(``client_credentials`` with a ``private_key_jwt`` client assertion) and either returns the
access token with a :class:`Grant` saying what it carries, or raises :class:`OAuthError` with the RFC 6749
§5.2 error. It knows nothing of HTTP; ``server/api/oauth.py`` serves it.

The assertion is checked in this order, each failure an ``invalid_client`` (401): the
algorithm (RS384 or ES384 only, read from the header before any key is touched), ``iss``
= ``sub`` naming an active registered client, ``jku`` (when sent) equal to the registered
``jwks_uri``, ``kid`` naming one of the client's keys of the algorithm's type, the
signature, ``aud`` = the token endpoint's URL, ``exp`` present, not past and at most five
minutes ahead, ``nbf``/``iat`` not in the future, and ``jti`` never seen before. Then what
the assertion asks for: the user (``fhirUser``) within the client's may-assert patterns
and the purpose (``purpose_of_use``) within its purposes (``unauthorized_client``, 400), a
break-glass reason exactly when the purpose is BTG or ETREAT (``invalid_request``), and
the requested scopes narrowed to the registration (``invalid_scope`` when none is left).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeGuard

import orjson
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, Key, RSAKey

from server.auth.clients import BREAK_GLASS, Client, ClientRegistry, is_user_reference
from server.auth.scopes import parse_scope, within
from server.auth.tokens import TokenService
from server.fhir.errors import FhirError

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
GRANT_TYPE = "client_credentials"
#: the signing algorithms SMART Backend Services requires servers to accept
ALGORITHMS = ("RS384", "ES384")
#: an assertion may expire at most this far ahead (seconds)
MAX_ASSERTION_LIFETIME = 300
#: allowance for the client's clock being a little ahead of or behind ours (seconds)
CLOCK_SKEW = 30
#: access token lifetimes (seconds): the SMART recommendation, and shorter under break-glass
TOKEN_LIFETIME = 300
BREAK_GLASS_LIFETIME = 120
MAX_ASSERTION_CHARS = 16_384
MAX_REASON_CHARS = 1000
MAX_JTI_CHARS = 255
#: who may break the glass: clinicians, never a carer or the service user
CLINICAL_USER_TYPES = ("Practitioner", "PractitionerRole")


class OAuthError(Exception):
    """A refused token request: the OAuth ``error`` code, a description safe to return, and
    the reason for the audit trail (which may say more, e.g. unknown versus disabled)."""

    def __init__(self, error: str, description: str, *, client_id: str | None = None,
                 reason: str | None = None) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.client_id = client_id
        self.reason = reason or description

    @property
    def status(self) -> int:
        return 401 if self.error == "invalid_client" else 400

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


@dataclass(frozen=True)
class Grant:
    """What an issued access token carries (not the token itself: this is what audit sees)."""

    client: Client
    scope: str
    expires_in: int
    fhir_user: str | None = None
    purpose_of_use: str | None = None
    break_glass_reason: str | None = None

    def body(self, access_token: str) -> dict[str, Any]:
        """The token response (RFC 6749 §5.1)."""
        return {"access_token": access_token, "token_type": "bearer", "expires_in": self.expires_in,
                "scope": self.scope}


class BackendServices:
    def __init__(self, registry: ClientRegistry, tokens: TokenService, token_url: str, fhir_base: str) -> None:
        self.registry = registry
        self.tokens = tokens
        self.token_url = token_url
        self.fhir_base = fhir_base.rstrip("/")

    def grant(self, form: Iterable[tuple[str, str]], now: float) -> tuple[str, Grant]:
        """The access token and what it carries, or :class:`OAuthError`."""
        params = _single_valued(form)
        grant_type = params.get("grant_type")
        if not grant_type:
            raise OAuthError("invalid_request", "grant_type is required")
        if grant_type != GRANT_TYPE:
            raise OAuthError("unsupported_grant_type", f"only grant_type={GRANT_TYPE} is supported")
        client, claims = self.authenticate(params, now)
        return self._issue(client, claims, params.get("scope", ""))

    # -- the client assertion -------------------------------------------------------------------
    def authenticate(self, params: dict[str, str], now: float) -> tuple[Client, dict[str, Any]]:
        if params.get("client_assertion_type") != ASSERTION_TYPE or not params.get("client_assertion"):
            raise OAuthError("invalid_client", "authenticate with a signed client assertion "
                             f"(client_assertion_type={ASSERTION_TYPE})")
        assertion = params["client_assertion"]
        if len(assertion) > MAX_ASSERTION_CHARS:
            raise OAuthError("invalid_client", "the client assertion is too large")
        try:
            compact = jws.extract_compact(assertion.encode())
            header = compact.headers()
            unverified = _json_object(compact.payload)
        except (JoseError, ValueError, TypeError):
            raise OAuthError("invalid_client", "the client assertion is not a signed JWT") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise OAuthError("invalid_client", f"assertions must be signed with {' or '.join(ALGORITHMS)}, "
                             f"not {str(alg)[:16]}")
        iss, sub = unverified.get("iss"), unverified.get("sub")
        if not isinstance(iss, str) or not iss or iss != sub:
            raise OAuthError("invalid_client", "the assertion's iss and sub must both be the client id")
        claimed = iss[:128]
        if params.get("client_id") not in (None, iss):
            raise OAuthError("invalid_client", "client_id differs from the assertion's iss", client_id=claimed)
        client = self.registry.get(iss)
        if client is None or not client.active:
            raise OAuthError("invalid_client", "the client is not registered or is disabled", client_id=claimed,
                             reason="the client is not registered" if client is None else "the client is disabled")
        key = self._key(client, header)
        try:
            claims = jwt.decode(assertion, key, algorithms=[alg]).claims
        except JoseError:
            raise OAuthError("invalid_client", "the assertion's signature does not verify",
                             client_id=client.client_id) from None
        self._check_claims(client, claims, now)
        return client, claims

    def _key(self, client: Client, header: dict[str, Any]) -> Key:
        jku = header.get("jku")
        if jku is not None and jku != client.jwks_uri:
            raise OAuthError("invalid_client", "jku is not the client's registered JWKS URL",
                             client_id=client.client_id)
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise OAuthError("invalid_client", "the assertion's header needs the kid of the signing key",
                             client_id=client.client_id)
        keys = client.key_set()
        found = next((k for k in keys or () if k.kid == kid), None)
        if found is None:
            raise OAuthError("invalid_client", "no key of this client has that kid", client_id=client.client_id)
        alg = header["alg"]
        if (alg == "RS384" and not isinstance(found, RSAKey)) or (
            alg == "ES384" and not (isinstance(found, ECKey) and found.get("crv") == "P-384")
        ):
            raise OAuthError("invalid_client", f"the key with that kid cannot sign {alg}",
                             client_id=client.client_id)
        return found

    def _check_claims(self, client: Client, claims: dict[str, Any], now: float) -> None:
        def refuse(description: str) -> OAuthError:
            return OAuthError("invalid_client", description, client_id=client.client_id)

        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if self.token_url not in audiences:
            raise refuse(f"the assertion's aud must be this token endpoint, {self.token_url}")
        exp = claims.get("exp")
        if not _is_number(exp):
            raise refuse("the assertion needs an exp")
        if exp <= now - CLOCK_SKEW:
            raise refuse("the assertion has expired")
        if exp > now + MAX_ASSERTION_LIFETIME + CLOCK_SKEW:
            raise refuse(f"the assertion's exp may be at most {MAX_ASSERTION_LIFETIME} seconds ahead")
        for name in ("nbf", "iat"):
            value = claims.get(name)
            if value is not None and (not _is_number(value) or value > now + CLOCK_SKEW):
                raise refuse(f"the assertion's {name} is in the future")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_CHARS:
            raise refuse(f"the assertion needs a jti (a unique string of at most {MAX_JTI_CHARS} characters)")
        if not self.registry.use_jti(client.client_id, jti, int(exp) + CLOCK_SKEW + 1, now):
            raise refuse("this assertion's jti was used before")

    # -- what the client asks for ---------------------------------------------------------------
    def _issue(self, client: Client, claims: dict[str, Any], requested: str) -> tuple[str, Grant]:
        cid = client.client_id
        fhir_user = self._fhir_user(client, claims.get("fhirUser"))
        purpose = claims.get("purpose_of_use")
        if purpose is not None and (not isinstance(purpose, str) or purpose not in client.purposes):
            raise OAuthError("unauthorized_client", "this client is not registered for that purpose_of_use",
                             client_id=cid)
        reason = claims.get("break_glass_reason")
        breaking_glass = purpose in BREAK_GLASS
        if breaking_glass:
            if not isinstance(reason, str) or not reason.strip():
                raise OAuthError("invalid_request", f"purpose_of_use {purpose} needs a break_glass_reason",
                                 client_id=cid)
            if len(reason) > MAX_REASON_CHARS:
                raise OAuthError("invalid_request", f"break_glass_reason is longer than {MAX_REASON_CHARS}",
                                 client_id=cid)
            if fhir_user is None or fhir_user.split("/", 1)[0] not in CLINICAL_USER_TYPES:
                raise OAuthError("unauthorized_client", "only a clinician (a Practitioner fhirUser) may break "
                                 "the glass", client_id=cid)
            reason = reason.strip()
        elif reason is not None:
            raise OAuthError("invalid_request", "break_glass_reason is only for purpose_of_use BTG or ETREAT",
                             client_id=cid)
        scope = self._scope(client, requested)
        lifetime = BREAK_GLASS_LIFETIME if breaking_glass else TOKEN_LIFETIME
        token = self.tokens.issue(
            cid, scope, lifetime=lifetime, fhir_user=fhir_user, organization=client.organization,
            purpose_of_use=purpose, break_glass_reason=reason,
        )
        return token, Grant(client, scope, lifetime, fhir_user, purpose, reason)

    def _fhir_user(self, client: Client, value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise OAuthError("invalid_request", "fhirUser must be a reference string", client_id=client.client_id)
        reference = value.removeprefix(self.fhir_base + "/")
        if not is_user_reference(reference):
            raise OAuthError("invalid_request", "fhirUser must be a Practitioner, PractitionerRole, RelatedPerson "
                             "or Patient reference on this server", client_id=client.client_id)
        if not client.may_assert_user(reference):
            raise OAuthError("unauthorized_client", "this client may not act for that fhirUser",
                             client_id=client.client_id)
        return reference

    def _scope(self, client: Client, requested: str) -> str:
        if not requested.strip():
            raise OAuthError("invalid_scope", "scope is required (e.g. system/Patient.rs)",
                             client_id=client.client_id)
        allowed = [s for s in (parse_scope(text) for text in client.scopes) if s is not None]
        granted: list[str] = []
        for text in dict.fromkeys(requested.split()):
            try:
                scope = parse_scope(text)
            except FhirError:
                continue
            if scope is not None and any(within(scope, a) for a in allowed):
                granted.append(text)
        if not granted:
            raise OAuthError("invalid_scope", "none of the requested scopes is within this client's registration",
                             client_id=client.client_id)
        return " ".join(granted)


def _single_valued(form: Iterable[tuple[str, str]]) -> dict[str, str]:
    params: dict[str, str] = {}
    for name, value in form:
        if name in params:
            raise OAuthError("invalid_request", f"parameter {name[:40]} appears more than once")
        params[name] = value
    return params


def _json_object(payload: bytes) -> dict[str, Any]:
    value = orjson.loads(payload)
    if not isinstance(value, dict):
        raise ValueError("the payload is not a JSON object")
    return value


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)
