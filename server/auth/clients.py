"""The client registry: who may ask ``/auth/token`` for an access token, and for what.

A registered client names its organisation (ODS code), its public keys (a JWKS; the
private half never leaves the client), the SMART scopes it may be granted, the purposes
of use it may claim and the users it may assert (``Practitioner/*`` for a GP system,
``RelatedPerson/*`` for a carer portal, or exact references). Clients are disabled, not
deleted, so that the audit trail keeps naming them.

The registry also keeps the ``jti`` of every client assertion until that assertion
expires, in the database, so that a replay is refused whichever worker receives it.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, RSAKey
from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from server.auth.scopes import parse_scope
from server.fhir.errors import FhirError
from server.store.schema import auth_assertion_jti, auth_client

ACTIVE = "active"
DISABLED = "disabled"
STATUSES = (ACTIVE, DISABLED)

#: v3 ActReason purposes of use a client may be registered for
#: (http://terminology.hl7.org/CodeSystem/v3-ActReason).
PURPOSES_OF_USE = frozenset({
    "TREAT", "ETREAT", "BTG", "CAREMGT", "COC", "PATRQT", "FAMRQT", "PWATRNY", "HPAYMT", "HOPERAT",
    "PUBHLTH", "HRESCH", "HSYSADMIN", "HLEGAL", "HMARKT", "HDIRECT", "POPHLTH",
})
#: purposes that break the glass: they need a stated reason
BREAK_GLASS = frozenset({"BTG", "ETREAT"})
#: resource types a client may assert as the user it acts for
USER_TYPES = ("Practitioner", "PractitionerRole", "RelatedPerson", "Patient")

_USER = re.compile(r"^(" + "|".join(USER_TYPES) + r")/([A-Za-z0-9\-.]{1,64})$")
_PATTERN = re.compile(r"^(" + "|".join(USER_TYPES) + r")/(\*|[A-Za-z0-9\-.]{1,64})$")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$")
_ODS = re.compile(r"^[A-Z0-9]{3,10}$")
MIN_RSA_BITS = 2048


class ClientError(FhirError):
    """A registration that cannot be accepted (bad JWKS, scope, purpose...)."""

    status, code = 400, "invalid"


@dataclass(frozen=True)
class Client:
    client_id: str
    name: str
    organization: str
    scopes: tuple[str, ...]
    purposes: tuple[str, ...] = ()
    may_assert: tuple[str, ...] = ()
    jwks: dict[str, Any] | None = field(default=None, compare=False)
    jwks_uri: str | None = None
    status: str = ACTIVE
    #: microseconds since the epoch (UTC)
    created: int = 0
    updated: int = 0

    @property
    def active(self) -> bool:
        return self.status == ACTIVE

    def key_set(self) -> KeySet | None:
        return KeySet.import_key_set(self.jwks) if self.jwks else None  # type: ignore[arg-type]

    def kids(self) -> list[str]:
        return [str(k.get("kid")) for k in (self.jwks or {}).get("keys", [])]

    def may_assert_user(self, reference: str) -> bool:
        """Whether this client may say it acts for ``reference`` (``Practitioner/abc``)."""
        m = _USER.match(reference)
        if not m:
            return False
        rtype = m.group(1)
        return any(p == reference or p == f"{rtype}/*" for p in self.may_assert)


def is_user_reference(reference: str) -> bool:
    return bool(_USER.match(reference))


def check_jwks(data: Any) -> dict[str, Any]:
    """A client's public JWKS as stored: public signing keys only, each with a distinct ``kid``.

    Accepts a key set (``{"keys": [...]}``) or a single JWK; keys are RSA of at least
    2048 bits or EC on P-384, the two key types of RS384 and ES384.
    """
    if isinstance(data, dict) and "keys" not in data and "kty" in data:
        data = {"keys": [data]}
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list) or not data["keys"]:
        raise ClientError("a JWKS is a JSON object with a non-empty 'keys' array")
    kids: set[str] = set()
    keys: list[dict[str, Any]] = []
    for i, jwk in enumerate(data["keys"]):
        where = f"JWKS key {i + 1}"
        if not isinstance(jwk, dict):
            raise ClientError(f"{where} is not a JSON object")
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not kid:
            raise ClientError(f"{where} has no 'kid': assertions name their key by kid")
        if kid in kids:
            raise ClientError(f"{where}: kid {kid!r} appears twice")
        kids.add(kid)
        if "d" in jwk or "p" in jwk:
            raise ClientError(f"{where} ({kid}) holds a private key; register the public key only")
        if jwk.get("use", "sig") != "sig":
            raise ClientError(f"{where} ({kid}) is not a signing key (use={jwk.get('use')!r})")
        try:
            key = (RSAKey if jwk.get("kty") == "RSA" else ECKey).import_key(jwk)
        except (JoseError, ValueError, TypeError) as exc:
            raise ClientError(f"{where} ({kid}) is not a valid RSA or EC key: {exc}") from None
        if isinstance(key, RSAKey):
            if key.raw_value.key_size < MIN_RSA_BITS:
                raise ClientError(f"{where} ({kid}): RSA keys need at least {MIN_RSA_BITS} bits")
            if jwk.get("alg", "RS384") != "RS384":
                raise ClientError(f"{where} ({kid}): an RSA key here signs RS384, not {jwk.get('alg')}")
        else:
            if jwk.get("crv") != "P-384":
                raise ClientError(f"{where} ({kid}): EC keys must be on P-384 (ES384)")
            if jwk.get("alg", "ES384") != "ES384":
                raise ClientError(f"{where} ({kid}): an EC key here signs ES384, not {jwk.get('alg')}")
        keys.append({k: v for k, v in jwk.items()})
    return {"keys": keys}


def check_client(client: Client) -> Client:
    """The client as it may be stored, or :class:`ClientError` saying what is wrong."""
    if not _CLIENT_ID.match(client.client_id):
        raise ClientError(f"client id {client.client_id!r}: letters, digits and . _ : - only, at most 128")
    if not client.name.strip():
        raise ClientError("a client needs a name")
    organization = client.organization.strip().upper()
    if not _ODS.match(organization):
        raise ClientError(f"organisation {client.organization!r} is not an ODS code")
    if client.status not in STATUSES:
        raise ClientError(f"status must be one of {', '.join(STATUSES)}")
    if client.jwks is None and not client.jwks_uri:
        raise ClientError("a client needs its public keys (a JWKS file or a jwks_uri)")
    jwks = check_jwks(client.jwks) if client.jwks is not None else None
    if not client.scopes:
        raise ClientError("a client needs at least one allowed scope")
    for text in client.scopes:
        try:
            scope = parse_scope(text)
        except FhirError as exc:
            raise ClientError(exc.diagnostics) from None
        if scope is None:
            raise ClientError(f"scope {text!r} is not a SMART resource scope (e.g. system/Patient.rs)")
    for code in client.purposes:
        if code not in PURPOSES_OF_USE:
            raise ClientError(f"purpose {code!r} is not a known purpose of use "
                              f"({', '.join(sorted(PURPOSES_OF_USE))})")
    for pattern in client.may_assert:
        if not _PATTERN.match(pattern):
            raise ClientError(f"may-assert {pattern!r}: use Type/* or Type/id, Type one of {', '.join(USER_TYPES)}")
    return replace(client, organization=organization, jwks=jwks,
                   scopes=_unique(client.scopes), purposes=_unique(client.purposes),
                   may_assert=_unique(client.may_assert))


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _now_us() -> int:
    return time.time_ns() // 1000


def _row_to_client(row: Any) -> Client:
    return Client(
        client_id=row.client_id, name=row.name, organization=row.organization,
        scopes=tuple(orjson.loads(row.scopes)), purposes=tuple(orjson.loads(row.purposes)),
        may_assert=tuple(orjson.loads(row.may_assert)),
        jwks=orjson.loads(row.jwks) if row.jwks else None, jwks_uri=row.jwks_uri,
        status=row.status, created=row.created, updated=row.updated,
    )


class ClientRegistry:
    """Registered clients and used assertion ids, in the store's database.

    ``is_disabled`` answers from a cache refreshed every ``status_ttl`` seconds, so that
    checking every request's token costs a dictionary lookup; a client disabled through
    this registry is refused at once in this process, and within ``status_ttl`` by others.
    """

    def __init__(self, engine: Engine, *, status_ttl: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.status_ttl = status_ttl
        self.clock = clock
        self._status: dict[str, tuple[float, bool]] = {}
        self._lock = threading.Lock()
        self._next_prune = 0.0

    # -- registration ------------------------------------------------------------------------
    def save(self, client: Client) -> bool:
        """Register ``client``, or replace the registration of that id (keeping its status and
        creation time). True when it is new."""
        client = check_client(client)
        now = _now_us()
        values = {
            "name": client.name, "organization": client.organization,
            "jwks": orjson.dumps(client.jwks).decode() if client.jwks is not None else None,
            "jwks_uri": client.jwks_uri,
            "scopes": orjson.dumps(list(client.scopes)).decode(),
            "purposes": orjson.dumps(list(client.purposes)).decode(),
            "may_assert": orjson.dumps(list(client.may_assert)).decode(),
            "updated": now,
        }
        with self.engine.begin() as conn:
            exists = conn.execute(
                select(auth_client.c.client_id).where(auth_client.c.client_id == client.client_id)
            ).first()
            if exists:
                conn.execute(update(auth_client).where(auth_client.c.client_id == client.client_id).values(values))
                created = False
            else:
                conn.execute(insert(auth_client).values(client_id=client.client_id, status=client.status,
                                                        created=now, **values))
                created = True
        self._forget(client.client_id)
        return created

    def get(self, client_id: str) -> Client | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(auth_client).where(auth_client.c.client_id == client_id)).first()
        return _row_to_client(row) if row else None

    def all(self) -> list[Client]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(auth_client).order_by(auth_client.c.client_id)).all()
        return [_row_to_client(r) for r in rows]

    def set_status(self, client_id: str, status: str) -> bool:
        """Enable or disable a client; False when no such client is registered."""
        if status not in STATUSES:
            raise ClientError(f"status must be one of {', '.join(STATUSES)}")
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(auth_client).where(auth_client.c.client_id == client_id)
                .values(status=status, updated=_now_us())
            ).rowcount
        self._forget(client_id)
        return bool(changed)

    # -- token checks ------------------------------------------------------------------------
    def is_disabled(self, client_id: str) -> bool:
        """True when ``client_id`` is registered and disabled (an unregistered id is not: the
        development tokens of ``carebridge token`` name clients nobody registered)."""
        now = self.clock()
        hit = self._status.get(client_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        with self.engine.connect() as conn:
            status = conn.execute(
                select(auth_client.c.status).where(auth_client.c.client_id == client_id)
            ).scalar()
        disabled = status is not None and status != ACTIVE
        with self._lock:
            if len(self._status) > 10_000:
                self._status.clear()
            self._status[client_id] = (now + self.status_ttl, disabled)
        return disabled

    def _forget(self, client_id: str) -> None:
        with self._lock:
            self._status.pop(client_id, None)

    def use_jti(self, client_id: str, jti: str, expires_at: int, now: float) -> bool:
        """Record an assertion id; False when this client used it before (a replay).

        Rows are kept until ``expires_at`` (seconds since the epoch) and pruned at most once a
        minute per process.
        """
        if now >= self._next_prune:
            self._next_prune = now + 60
            with self.engine.begin() as conn:
                conn.execute(delete(auth_assertion_jti).where(auth_assertion_jti.c.expires_at < int(now)))
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(auth_assertion_jti).values(client_id=client_id, jti=jti, expires_at=expires_at))
        except IntegrityError:
            return False
        return True
