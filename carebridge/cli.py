"""The ``carebridge`` command: serve the API, mint development tokens, load and reindex data.

Subcommands that belong to an adapter (``ingest``, ``mllp``, ``check``) are registered by
that adapter's package, so this module only wires them in.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from carebridge.config import Settings, from_environment

Handler = Callable[[argparse.Namespace, Settings], int]


def _settings(args: argparse.Namespace) -> Settings:
    return from_environment().with_overrides(
        database_url=getattr(args, "database_url", None),
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        workers=getattr(args, "workers", None),
    )


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from carebridge.serving import serve
    from server.store.engine import make_engine, migrate

    engine = make_engine(settings.database_url)
    migrate(engine)
    engine.dispose()
    if args.demo_data:
        from carebridge.demo import load_demo_data
        from server.auth.client_keys import DEMO_KEYS

        created = load_demo_data(settings)
        print(f"demo data: {created} resources created ({'already loaded' if not created else 'new store'})")
        print(f"demo clients: {settings.var_dir / DEMO_KEYS} holds their development keys "
              "(carebridge client list; README, 'Who sees what')")
    # workers read their settings from the environment
    os.environ["CAREBRIDGE_DATABASE_URL"] = settings.database_url
    os.environ["CAREBRIDGE_HOST"] = settings.host
    os.environ["CAREBRIDGE_PORT"] = str(settings.port)
    os.environ["CAREBRIDGE_VAR_DIR"] = str(settings.var_dir)
    if settings.public_base_url:
        os.environ["CAREBRIDGE_PUBLIC_BASE_URL"] = settings.public_base_url
    workers = settings.workers
    print(f"carebridge: serving {settings.fhir_base_url} ({workers} worker{'s' if workers > 1 else ''}, "
          f"store {settings.database_url})", flush=True)
    serve("server.api.asgi:app_factory", host=settings.host, port=settings.port, workers=workers,
          log_level=args.log_level)
    print("carebridge: stopped", flush=True)
    return 0


def cmd_token(args: argparse.Namespace, settings: Settings) -> int:
    from server.auth.tokens import TokenService

    service = TokenService(settings.var_dir)
    print(service.issue(
        args.client, args.scope, lifetime=args.lifetime, fhir_user=args.fhir_user,
        organization=args.organization, purpose_of_use=args.purpose_of_use, patient=args.patient,
        break_glass_reason=args.break_glass_reason,
    ))
    return 0


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from server.store.engine import make_engine, migrate

    migrate(make_engine(settings.database_url))
    print(f"store at {settings.database_url} is up to date")
    return 0


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    from server.store.bulk import import_ndjson

    return import_ndjson(settings, [Path(p) for p in args.files], batch_size=args.batch_size,
                         progress=not args.quiet)


def cmd_reindex(args: argparse.Namespace, settings: Settings) -> int:
    from server.store.reindex import reindex

    return reindex(settings, all_params=args.all, resource_type=args.type)


def cmd_validate(args: argparse.Namespace, settings: Settings) -> int:
    from server.validation.command import run

    return run(args.files, args.profile or [], as_json=args.json)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="carebridge", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def store_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument("--database-url", help="store URL (default: CAREBRIDGE_DATABASE_URL or var/carebridge.sqlite)")

    p = sub.add_parser("serve", help="serve the FHIR API")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--workers", type=int, help="API worker processes (default 1; CAREBRIDGE_WORKERS)")
    p.add_argument("--demo-data", action="store_true", help="load the demo data first (idempotent)")
    p.add_argument("--log-level", default="info")
    store_flag(p)
    p.set_defaults(handler=cmd_serve)

    p = sub.add_parser("token", help="print a bearer token the server accepts (development key under var/)")
    p.add_argument("--client", required=True)
    p.add_argument("--scope", default="system/*.rs")
    p.add_argument("--fhir-user", help="the user the client acts for, e.g. Practitioner/abc")
    p.add_argument("--organization", help="the client's organisation (ODS code)")
    p.add_argument("--purpose-of-use", help="e.g. TREAT, ETREAT, BTG")
    p.add_argument("--patient", help="launch patient id for patient/ scopes")
    p.add_argument("--break-glass-reason", help="with purpose BTG or ETREAT: why the record is opened")
    p.add_argument("--lifetime", type=int, default=12 * 3600, help="seconds (default 12 hours)")
    p.set_defaults(handler=cmd_token)

    p = sub.add_parser("migrate", help="create or upgrade the store's schema")
    store_flag(p)
    p.set_defaults(handler=cmd_migrate)

    p = sub.add_parser("import", help="load FHIR NDJSON files into the store")
    p.add_argument("files", nargs="+")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--quiet", action="store_true")
    store_flag(p)
    p.set_defaults(handler=cmd_import)

    p = sub.add_parser("reindex", help="rebuild search index rows for changed search parameters")
    p.add_argument("--all", action="store_true", help="rebuild every parameter, changed or not")
    p.add_argument("--type", help="only this resource type")
    store_flag(p)
    p.set_defaults(handler=cmd_reindex)

    from server.auth.cli import register as register_client_commands

    register_client_commands(sub)
    p = sub.add_parser("validate", help="validate FHIR JSON, NDJSON or Bundle files against R4 and the profiles")
    p.add_argument("files", nargs="+")
    p.add_argument("--profile", action="append", help="also validate against this profile (canonical URL)")
    p.add_argument("--json", action="store_true", help="print each resource's OperationOutcome as JSON")
    p.set_defaults(handler=cmd_validate)

    for register in _adapter_commands():
        register(sub)
    from server.audit.cli import register as register_audit

    register_audit(sub)
    return parser


def _adapter_commands() -> list[Callable[[argparse._SubParsersAction[Any]], None]]:
    found: list[Callable[[argparse._SubParsersAction[Any]], None]] = []
    try:
        from adapters.cli import register
    except ImportError:
        return found
    found.append(register)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = _settings(args)
    try:
        return int(args.handler(args, settings))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
