"""Adapter subcommands of ``carebridge``: ``ingest gp-referral``, ``check gp-referral``."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

from carebridge import heap
from carebridge.config import Settings


def _read(paths: list[str]) -> Iterator[bytes]:
    from adapters.gp_referral.hl7 import split_stream

    for p in paths:
        with Path(p).open("rb") as fh:
            yield from split_stream(iter(lambda: fh.read(1 << 16), b""))


def _line(key: str, accepted: bool, created: int, problems: list[object]) -> str:
    if accepted:
        return f"accepted {key}: {created} created"
    return f"rejected {key}: " + "; ".join(str(p) for p in problems)


def cmd_ingest_gp_referral(args: argparse.Namespace, settings: Settings) -> int:
    rejected = 0
    if args.fhir_base:
        from adapters.gp_referral.remote import ingest_remote

        outcomes = ingest_remote(args.fhir_base, _read(args.paths), token=args.token)
    else:
        from adapters.gp_referral.ingest import default_workers, ingest
        from server.api.app import build_state

        state = build_state(settings)
        heap.settle()
        workers = default_workers() if args.workers is None else args.workers
        outcomes = (o for _, o in ingest(state.repository, _read(args.paths), batch_size=args.batch_size,
                                         workers=workers))
    for o in outcomes:
        rejected += not o.accepted
        print(_line(o.key, o.accepted, o.created, list(o.problems)), flush=True)
    return 1 if rejected else 0


def cmd_check_gp_referral(args: argparse.Namespace, settings: Settings) -> int:
    from adapters.gp_referral.convert import convert

    bad = 0
    for raw in _read(args.paths):
        c = convert(raw)
        key = c.key or c.control_id or "(no control id)"
        if c.ok and c.bundle:
            kinds: dict[str, int] = {}
            for e in c.bundle["entry"]:
                t = e["resource"]["resourceType"]
                kinds[t] = kinds.get(t, 0) + 1
            print(f"ok {key}: would write " + ", ".join(f"{n} {t}" for t, n in kinds.items()))
        else:
            bad += 1
            print(f"problems {key}:")
            for p in c.problems:
                print(f"  {p}")
    return 1 if bad else 0


def cmd_replay_gp_referral(args: argparse.Namespace, settings: Settings) -> int:
    from adapters.gp_referral.mapping import latest_version, load
    from adapters.gp_referral.replay import replay
    from server.api.app import build_state

    state = build_state(settings)
    heap.settle()
    mapping = load(args.mapping or latest_version())
    rejected = 0
    for o in replay(state.repository, mapping):
        rejected += not o.accepted
        print(_line(o.key, o.accepted, o.created, list(o.problems)), flush=True)
    print(f"replayed through {mapping.version}")
    return 1 if rejected else 0


def cmd_mllp(args: argparse.Namespace, settings: Settings) -> int:
    from adapters.gp_referral.mllp import Limits, serve_forever
    from server.api.app import build_state

    state = build_state(settings)
    heap.settle()
    serve_forever(state.repository, args.host or "127.0.0.1", args.port,
                  Limits(idle_timeout=args.idle_timeout, max_message=args.max_message))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    ingest = sub.add_parser("ingest", help="land source files in the store")
    isub = ingest.add_subparsers(dest="source", required=True)
    p = isub.add_parser("gp-referral", help="HL7 v2 REF^I12..I15 files (bare or MLLP-framed)")
    p.add_argument("paths", nargs="+")
    p.add_argument("--fhir-base", help="POST transaction Bundles to this FHIR base instead of the local store")
    p.add_argument("--token", help="bearer token for --fhir-base (default: CAREBRIDGE_TOKEN)")
    p.add_argument("--database-url")
    p.add_argument("--batch-size", type=int, default=200, help="messages per commit (each in its own savepoint)")
    p.add_argument("--workers", type=int, help="processes that convert and check messages beside the writer "
                   "(default: one per core; 0: all in one process)")
    p.set_defaults(handler=cmd_ingest_gp_referral)

    check = sub.add_parser("check", help="supplier conformance checks; writes nothing")
    csub = check.add_subparsers(dest="source", required=True)
    p = csub.add_parser("gp-referral", help="report what each HL7 v2 referral would create and every problem")
    p.add_argument("paths", nargs="+")
    p.set_defaults(handler=cmd_check_gp_referral)

    replay = sub.add_parser("replay", help="re-run stored source messages through a (newer) mapping")
    rsub = replay.add_subparsers(dest="source", required=True)
    p = rsub.add_parser("gp-referral", help="every stored HL7 v2 referral")
    p.add_argument("--mapping", help="mapping version under mappings/gp_referral (default: the newest)")
    p.add_argument("--database-url")
    p.set_defaults(handler=cmd_replay_gp_referral)

    p = sub.add_parser("mllp", help="MLLP listener for HL7 v2 referrals; answers each message with an ACK")
    p.add_argument("--host")
    p.add_argument("--port", type=int, default=2575)
    p.add_argument("--idle-timeout", type=float, default=300.0, help="seconds before an idle connection is closed")
    p.add_argument("--max-message", type=int, default=1 << 20, help="largest message in bytes")
    p.add_argument("--database-url")
    p.set_defaults(handler=cmd_mllp)
