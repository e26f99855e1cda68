"""``carebridge client``: register, list, disable and enable Backend Services clients, make
a development key pair for one, and sign an assertion with it.

``add`` is declarative: adding an id that exists replaces its registration (name, keys,
organisation, scopes, purposes, may-assert) but keeps its status, so updating a disabled
client does not bring it back; ``enable`` does.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from carebridge.config import Settings
    from server.auth.clients import ClientRegistry


def _registry(settings: Settings) -> ClientRegistry:
    from server.auth.clients import ClientRegistry
    from server.store.engine import make_engine, migrate

    engine = make_engine(settings.database_url)
    migrate(engine)
    return ClientRegistry(engine)


def _split(values: Sequence[str] | None) -> tuple[str, ...]:
    """Repeated options, each possibly holding several space-separated values."""
    return tuple(item for value in values or () for item in value.split())


def cmd_add(args: argparse.Namespace, settings: Settings) -> int:
    from server.auth.clients import Client, ClientError

    jwks: Any = None
    if args.jwks:
        try:
            jwks = orjson.loads(Path(args.jwks).read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            print(f"cannot read the JWKS {args.jwks}: {exc}")
            return 1
    client = Client(
        client_id=args.id, name=args.name or args.id, organization=args.organization,
        scopes=_split(args.scope), purposes=_split(args.purpose), may_assert=_split(args.may_assert),
        jwks=jwks, jwks_uri=args.jwks_uri,
    )
    registry = _registry(settings)
    try:
        created = registry.save(client)
    except ClientError as exc:
        print(f"client {args.id} not registered: {exc.diagnostics}")
        return 1
    finally:
        registry.engine.dispose()
    print(f"client {args.id} {'registered' if created else 'updated'}")
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    registry = _registry(settings)
    try:
        clients = registry.all()
    finally:
        registry.engine.dispose()
    if args.json:
        print(orjson.dumps([{
            "client_id": c.client_id, "name": c.name, "status": c.status, "organization": c.organization,
            "scopes": c.scopes, "purposes": c.purposes, "may_assert": c.may_assert, "kids": c.kids(),
            "jwks_uri": c.jwks_uri, "created": _when(c.created), "updated": _when(c.updated),
        } for c in clients], option=orjson.OPT_INDENT_2).decode())
        return 0
    header = ("client", "status", "org", "name", "scopes", "purposes", "may assert", "keys", "updated")
    rows = [header] + [(
        c.client_id, c.status, c.organization, c.name, " ".join(c.scopes), " ".join(c.purposes) or "-",
        " ".join(c.may_assert) or "-", " ".join(c.kids()) or (c.jwks_uri or "-"), _when(c.updated),
    ) for c in clients]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    if not clients:
        print("(no clients registered)")
    return 0


def _when(us: int) -> str:
    return datetime.fromtimestamp(us / 1_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _set_status(args: argparse.Namespace, settings: Settings, status: str) -> int:
    registry = _registry(settings)
    try:
        found = registry.set_status(args.id, status)
    finally:
        registry.engine.dispose()
    if not found:
        print(f"no client {args.id} is registered")
        return 1
    print(f"client {args.id} {status}")
    return 0


def cmd_disable(args: argparse.Namespace, settings: Settings) -> int:
    return _set_status(args, settings, "disabled")


def cmd_enable(args: argparse.Namespace, settings: Settings) -> int:
    return _set_status(args, settings, "active")


def cmd_keygen(args: argparse.Namespace, settings: Settings) -> int:
    from server.auth.client_keys import CLIENT_KEYS, generate_key, write_key_pair

    pem, jwks = generate_key(args.alg)
    kid = jwks["keys"][0]["kid"]
    out = Path(args.out) if args.out else settings.var_dir / CLIENT_KEYS / kid
    try:
        private, public = write_key_pair(out, pem, jwks)
    except FileExistsError:
        print(f"{out} already holds a key; choose another --out")
        return 1
    print(f"kid {kid} ({args.alg})")
    print(f"private key: {private}  (keep it with the client; never register or commit it)")
    print(f"public JWKS: {public}  (register it: carebridge client add ... --jwks {public})")
    return 0


def cmd_assertion(args: argparse.Namespace, settings: Settings) -> int:
    """Print a signed client assertion, so that a shell can get a token with curl alone."""
    from server.auth.backend_services import MAX_ASSERTION_LIFETIME
    from server.auth.client_keys import (
        PRIVATE_KEY_FILE,
        ClientKeyError,
        key_folders,
        read_private_key,
        registered_kid,
        sign_assertion,
    )

    def fail(message: str) -> int:
        print(message, file=sys.stderr)
        return 1

    if not 1 <= args.lifetime <= MAX_ASSERTION_LIFETIME:
        return fail(f"--lifetime must be 1 to {MAX_ASSERTION_LIFETIME} seconds: the token endpoint refuses "
                    "assertions that live longer")
    registry = _registry(settings)
    try:
        client = registry.get(args.id)
    finally:
        registry.engine.dispose()
    if client is None:
        return fail(f"no client {args.id} is registered (carebridge client list shows those that are)")
    if args.key:
        path = Path(args.key)
    else:
        candidates = [folder / PRIVATE_KEY_FILE for folder in key_folders(settings.var_dir, args.id)]
        found = next((c for c in candidates if c.exists()), None)
        if found is None:
            return fail(f"no private key for client {args.id} in {' or '.join(map(str, candidates))}; "
                        "name it with --key PATH")
        path = found
    try:
        key = read_private_key(path)
    except ClientKeyError as exc:
        return fail(str(exc))
    kid = registered_kid(key, client.jwks)
    if kid is None:
        return fail(f"the key in {path} is not one of client {args.id}'s registered keys "
                    f"({' '.join(client.kids()) or 'none'}); register its public JWKS with carebridge client add")
    if not client.active:
        print(f"client {args.id} is disabled: the token endpoint will refuse this assertion", file=sys.stderr)
    print(sign_assertion(client.client_id, key, kid, args.aud or settings.token_url, lifetime=args.lifetime,
                         fhir_user=args.fhir_user, purpose_of_use=args.purpose_of_use,
                         break_glass_reason=args.break_glass_reason))
    return 0


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``client`` and its subcommands to the ``carebridge`` parser."""
    from server.auth.client_keys import KEYGEN_ALGORITHMS

    client = sub.add_parser("client", help="register and manage SMART Backend Services clients")
    commands = client.add_subparsers(dest="client_command", required=True)

    def store_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument("--database-url", help="store URL (default: CAREBRIDGE_DATABASE_URL or var/carebridge.sqlite)")

    p = commands.add_parser("add", help="register a client, or replace the registration of an existing id")
    p.add_argument("--id", required=True, help="the client_id (the iss and sub of its assertions)")
    p.add_argument("--name", help="a name people recognise (default: the id)")
    p.add_argument("--jwks", help="file with the client's public JWKS (or one public JWK)")
    p.add_argument("--jwks-uri", help="the client's JWKS URL, recorded (assertions' jku must match it)")
    p.add_argument("--organization", required=True, help="the client's organisation (ODS code)")
    p.add_argument("--scope", action="append", required=True,
                   help="allowed SMART scopes (repeat, or several in one quoted string)")
    p.add_argument("--purpose", action="append", help="an allowed purpose of use, e.g. TREAT (repeat)")
    p.add_argument("--may-assert", action="append",
                   help="users it may act for: Practitioner/*, RelatedPerson/*, Patient/*, or Type/id (repeat)")
    store_flag(p)
    p.set_defaults(handler=cmd_add)

    p = commands.add_parser("list", help="the registered clients")
    p.add_argument("--json", action="store_true", help="as JSON")
    store_flag(p)
    p.set_defaults(handler=cmd_list)

    for name, handler, text in (("disable", cmd_disable, "refuse its assertions and its unexpired tokens"),
                                ("enable", cmd_enable, "accept a disabled client again")):
        p = commands.add_parser(name, help=text)
        p.add_argument("id")
        store_flag(p)
        p.set_defaults(handler=handler)

    p = commands.add_parser("keygen", help="write a development key pair: private PEM and public JWKS")
    p.add_argument("--alg", choices=KEYGEN_ALGORITHMS, default="ES384")
    p.add_argument("--out", help="folder for the two files (default: var/client-keys/<kid>)")
    p.set_defaults(handler=cmd_keygen)

    p = commands.add_parser("assertion", help="print a signed client assertion for POST /auth/token")
    p.add_argument("--id", required=True, help="the registered client id (the assertion's iss and sub)")
    p.add_argument("--key", help="its private key, PEM (default: var/demo-clients/<id>/private-key.pem, "
                   "else var/client-keys/<id>/private-key.pem)")
    p.add_argument("--aud", help="the token endpoint's URL (default: this server's, from its settings)")
    p.add_argument("--fhir-user", help="the user it acts for, e.g. Practitioner/gp-patel")
    p.add_argument("--purpose-of-use", help="e.g. TREAT; BTG or ETREAT need --break-glass-reason")
    p.add_argument("--break-glass-reason", help="with BTG or ETREAT: why the record is opened")
    p.add_argument("--lifetime", type=int, default=240, help="seconds until it expires (default 240, at most 300)")
    store_flag(p)
    p.set_defaults(handler=cmd_assertion)
