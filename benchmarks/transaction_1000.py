#!/usr/bin/env python3
"""How long a 1,000-entry transaction Bundle takes to commit, on SQLite and on PostgreSQL.

    .venv/bin/python benchmarks/transaction_1000.py [--runs 5] [--entries 1000] [--backends sqlite,postgres]

Each Bundle holds ``--entries / 2`` Patients (from ``make_store.py``'s generator: valid
modulus-11 NHS numbers in the 999 range, unique across the runs) and as many ServiceRequests
whose subject is their Patient's ``urn:uuid`` full URL, all ``POST``. Each backend gets a
fresh store (a temporary SQLite file; a PostgreSQL database created here and dropped WITH
(FORCE) afterwards) served by ``carebridge serve`` on a free loopback port, one untimed
50-entry warm-up transaction, then ``--runs`` timed transactions, one at a time. The time is
the client's: from sending the request to having read the whole ``transaction-response``,
which must be 200 with one ``201`` entry per request entry. Reports the median, min and max.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_store  # noqa: E402
from _serve import PG_ADMIN_DEFAULT, Server, git_commit, machine, pg_database, results_dir  # noqa: E402


def bundle(gen: make_store.Generator, entries: int) -> dict[str, Any]:
    out = []
    for _ in range(entries // 2):
        patient, _nhs = gen.patient()
        patient.pop("id")
        full = f"urn:uuid:{uuid.UUID(int=gen.rng.getrandbits(128), version=4)}"
        sr = gen.service_request("x")
        sr.pop("id")
        sr["subject"] = {"reference": full}
        out.append({"fullUrl": full, "resource": patient, "request": {"method": "POST", "url": "Patient"}})
        out.append({"fullUrl": f"urn:uuid:{uuid.UUID(int=gen.rng.getrandbits(128), version=4)}",
                    "resource": sr, "request": {"method": "POST", "url": "ServiceRequest"}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": out}


def check(resp: Any, n: int) -> str | None:
    if resp.status_code != 200:
        return f"status {resp.status_code}: {resp.text[:300]}"
    body = resp.json()
    if body.get("type") != "transaction-response":
        return f"not a transaction-response: {resp.text[:300]}"
    got = body.get("entry") or []
    if len(got) != n:
        return f"{len(got)} entries in the response, not {n}"
    bad = [e for e in got if not str((e.get("response") or {}).get("status", "")).startswith("201")]
    return f"{len(bad)} entries not 201: {json.dumps(bad[0])[:300]}" if bad else None


def measure(server: Server, gen: make_store.Generator, entries: int, runs: int, timeout: float) -> dict[str, Any]:
    import httpx

    headers = dict(server.headers, **{"Content-Type": "application/fhir+json"})
    times: list[float] = []
    errors: list[str] = []
    with httpx.Client(headers=headers, timeout=timeout, trust_env=False) as client:
        warm = client.post(server.base, content=json.dumps(bundle(gen, 50)).encode())
        if (problem := check(warm, 50)) is not None:
            errors.append(f"warm-up: {problem}")
        for _ in range(runs):
            body = json.dumps(bundle(gen, entries), separators=(",", ":")).encode()
            t0 = time.perf_counter()
            resp = client.post(server.base, content=body)
            elapsed = time.perf_counter() - t0
            problem = check(resp, 2 * (entries // 2))
            if problem is None:
                times.append(elapsed)
            else:
                errors.append(problem)
            print(f"  {elapsed * 1000:8.0f} ms" + (f"  {problem}" if problem else ""), file=sys.stderr, flush=True)
    ms = [round(t * 1000, 1) for t in times]
    return {"runs_ok": len(times), "errors": errors, "ms": ms,
            "median_ms": round(statistics.median(ms), 1) if ms else None,
            "min_ms": min(ms) if ms else None, "max_ms": max(ms) if ms else None,
            "entries_per_s": round(2 * (entries // 2) / statistics.median(times), 0) if times else None,
            "bytes": len(body)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--entries", type=int, default=1000)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--backends", default="sqlite,postgres")
    p.add_argument("--postgres", default=PG_ADMIN_DEFAULT, help="admin URL of the PostgreSQL server")
    p.add_argument("--workers", type=int, default=1, help="carebridge serve --workers")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per request at most")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--target-ms", type=float, default=2000.0)
    p.add_argument("--out", default=None, help="results dir (default benchmarks/results/transaction-<time>)")
    args = p.parse_args(argv)
    if not 2 <= args.entries <= 10_000 or not 1 <= args.runs <= 50:
        p.error("--entries 2..10000, --runs 1..50")
    out = results_dir("transaction", args.out)
    gen = make_store.Generator(args.seed)
    doc: dict[str, Any] = {"tool": "carebridge-transaction-1000", "started": time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(), "commit": git_commit(),
        "entries": 2 * (args.entries // 2), "runs": args.runs, "workers": args.workers, "results": {}}
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        print(f"transaction_1000: {backend}", file=sys.stderr, flush=True)
        if backend == "sqlite":
            with tempfile.TemporaryDirectory(prefix="carebridge-bench-tx-") as d, \
                    Server(f"sqlite:///{d}/tx.sqlite", workers=args.workers,
                           log_path=out / "serve-sqlite.log") as server:
                doc["results"][backend] = measure(server, gen, args.entries, args.runs, args.timeout)
        elif backend == "postgres":
            with pg_database(args.postgres, tag="tx") as url, \
                    Server(url, workers=args.workers, log_path=out / "serve-postgres.log") as server:
                doc["results"][backend] = measure(server, gen, args.entries, args.runs, args.timeout)
        else:
            p.error(f"unknown backend {backend!r}")
    doc["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    (out / "transaction_1000.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(f"results: {out / 'transaction_1000.json'}\n")
    print(f"| backend | {doc['entries']}-entry transaction, median (min-max) of {args.runs} | entries/s | "
          f"< {args.target_ms / 1000:g} s |")
    print("|---|---|---|---|")
    for backend, r in doc["results"].items():
        if r["median_ms"] is None:
            print(f"| {backend} | failed: {r['errors'][:1]} | - | fail |")
            continue
        verdict = "pass" if r["median_ms"] < args.target_ms else "fail"
        print(f"| {backend} | {r['median_ms']:,.0f} ms ({r['min_ms']:,.0f}-{r['max_ms']:,.0f})"
              + (f", {len(r['errors'])} failed" if r["errors"] else "")
              + f" | {r['entries_per_s']:,.0f} | {verdict} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
