"""A client's side of Backend Services: its key pair on disk and the assertions it signs.

``carebridge client keygen``, the demo clients and ``carebridge client assertion`` share
these, so that a key made by one is read and used by the others the same way: the
private key as PEM (mode 0600) beside its public JWKS, the ``kid`` the key's RFC 7638
thumbprint, and the algorithm fixed by the key's type (RS384 for RSA, ES384 for EC
P-384), the only two the token endpoint accepts.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

PRIVATE_KEY_FILE = "private-key.pem"
JWKS_FILE = "jwks.json"
KEYGEN_ALGORITHMS = ("RS384", "ES384")
RSA_BITS = 3072
#: folders under ``var/`` holding development keys, one folder per client id: the demo
#: clients' and those ``carebridge client keygen --out var/client-keys/<id>`` writes
DEMO_KEYS = "demo-clients"
CLIENT_KEYS = "client-keys"

ClientKey = RSAKey | ECKey


class ClientKeyError(Exception):
    """A private key that cannot be used to sign assertions (missing, unreadable, wrong type)."""


def algorithm_for(key: ClientKey) -> str:
    """The assertion algorithm a key signs with: RS384 for RSA, ES384 for EC P-384."""
    if isinstance(key, RSAKey):
        return "RS384"
    if key.get("crv") == "P-384":
        return "ES384"
    raise ClientKeyError(f"an EC key on {key.get('crv')} cannot sign ES384 (it needs P-384)")


def public_jwks(key: ClientKey) -> dict[str, Any]:
    """The public JWKS to register for ``key``: its kid is the key's thumbprint."""
    public = key.as_dict(private=False)
    public.update({"kid": key.thumbprint(), "alg": algorithm_for(key), "use": "sig"})
    return {"keys": [public]}


def generate_key(alg: str) -> tuple[bytes, dict[str, Any]]:
    """A new private key (PEM) and its public JWKS for ``alg`` (RS384 or ES384)."""
    if alg not in KEYGEN_ALGORITHMS:
        raise ValueError(f"keys are made for {' or '.join(KEYGEN_ALGORITHMS)}, not {alg}")
    key: ClientKey = (RSAKey.generate_key(RSA_BITS, private=True) if alg == "RS384"
                      else ECKey.generate_key("P-384", private=True))
    return key.as_pem(private=True), public_jwks(key)


def write_key_pair(folder: Path, pem: bytes, jwks: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``private-key.pem`` (0600) and ``jwks.json`` into ``folder``; never overwrites
    (:class:`FileExistsError` when either is there)."""
    private, public = folder / PRIVATE_KEY_FILE, folder / JWKS_FILE
    if private.exists() or public.exists():
        raise FileExistsError(f"{folder} already holds a key")
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    return private, write_jwks(folder, jwks)


def write_jwks(folder: Path, jwks: dict[str, Any]) -> Path:
    """Write the public ``jwks.json`` into ``folder`` (the file ``carebridge client add --jwks`` takes)."""
    public = folder / JWKS_FILE
    public.write_bytes(orjson.dumps(jwks, option=orjson.OPT_INDENT_2) + b"\n")
    return public


def key_folders(var_dir: Path, client_id: str) -> list[Path]:
    """Where a client's development private key is looked for when no path is given."""
    return [var_dir / DEMO_KEYS / client_id, var_dir / CLIENT_KEYS / client_id]


def read_private_key(path: Path) -> ClientKey:
    """The private key in a PEM file (RSA or EC), or :class:`ClientKeyError` saying why not."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ClientKeyError(f"no private key at {path}") from None
    except OSError as exc:
        raise ClientKeyError(f"cannot read the private key {path}: {exc.strerror}") from None
    for kind in (RSAKey, ECKey):
        try:
            key = kind.import_key(data)
        except (JoseError, ValueError, TypeError):
            continue
        if not key.is_private:
            raise ClientKeyError(f"{path} holds a public key; an assertion is signed with the private key")
        algorithm_for(key)
        return key
    raise ClientKeyError(f"{path} is not an RSA or EC private key in PEM")


def registered_kid(key: ClientKey, jwks: dict[str, Any] | None) -> str | None:
    """The ``kid`` under which the public half of ``key`` is registered in ``jwks``, if it is."""
    thumbprint = key.thumbprint()
    for jwk in (jwks or {}).get("keys", []):
        try:
            candidate = (RSAKey if jwk.get("kty") == "RSA" else ECKey).import_key(jwk)
        except (JoseError, ValueError, TypeError):
            continue
        if candidate.thumbprint() == thumbprint:
            return str(jwk.get("kid"))
    return None


def sign_assertion(client_id: str, key: ClientKey, kid: str, aud: str, *, lifetime: int = 240,
                   fhir_user: str | None = None, purpose_of_use: str | None = None,
                   break_glass_reason: str | None = None, now: float | None = None) -> str:
    """A client assertion as SMART Backend Services asks for: iss = sub = the client id,
    aud = the token endpoint, a short exp and a fresh jti, plus who and why when given."""
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {"iss": client_id, "sub": client_id, "aud": aud, "iat": issued,
                              "exp": issued + lifetime, "jti": uuid.uuid4().hex}
    for name, value in (("fhirUser", fhir_user), ("purpose_of_use", purpose_of_use),
                        ("break_glass_reason", break_glass_reason)):
        if value:
            claims[name] = value
    alg = algorithm_for(key)
    return jwt.encode({"alg": alg, "kid": kid, "typ": "JWT"}, claims, key, algorithms=[alg])
