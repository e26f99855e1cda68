#!/usr/bin/env python3
"""First-page latency of indexed searches on a store of 10k and of 1M resources, over HTTP.

    .venv/bin/python benchmarks/search_at_scale.py [--sizes 10000,1000000] [--requests 300]
        [--postgres auto|URL] [--pg-sizes 1000000] [--pg-searches identifier] [--explain]

For each size it builds (or reuses) a SQLite store: NDJSON from ``make_store.py`` loaded with
``carebridge import``, both cached under ``$CAREBRIDGE_BENCH_CACHE`` (default
``/tmp/carebridge-bench-stores``) by size, seed and generator version; the import's time and
rate are kept beside the store. It serves the store with ``carebridge serve`` (one worker) on a
free loopback port and times each search below sequentially with httpx (one keep-alive
connection): a warm-up, then ``--requests`` requests, each search's values varied over samples
from the store (every answer is checked: 200, a searchset Bundle; the identifier search must
return its Patient). Reports p50/p90/p99 per search and size, and the ratio of the p50s.

With ``--postgres`` it also imports the sizes in ``--pg-sizes`` into a fresh PostgreSQL database
(created here, dropped WITH (FORCE) afterwards), reports the import rate and times the
``--pg-searches``. ``--explain`` prints the plan of each search's SQL (compiled by the product's own
repository, in this process): SQLite's EXPLAIN QUERY PLAN, PostgreSQL's EXPLAIN (ANALYZE, BUFFERS).

Every loop is bounded: ``--requests`` per search, ``--time-cap`` seconds per search, and the
import's ``--import-timeout``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_store  # noqa: E402
from _serve import (  # noqa: E402
    CAREBRIDGE,
    PG_ADMIN_DEFAULT,
    ROOT,
    Server,
    git_commit,
    machine,
    pg_database,
    results_dir,
    stats_ms,
)

CACHE = Path(os.environ.get("CAREBRIDGE_BENCH_CACHE", "/tmp/carebridge-bench-stores"))
NHS = make_store.NHS_SYSTEM
SEARCH_NAMES = ("identifier", "family", "birthdate", "sr_subject", "sr_status", "obs_code", "lastupdated")
DESCRIPTIONS = {
    "identifier": "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|<n>",
    "family": "Patient?family=<3-letter prefix>",
    "birthdate": "Patient?birthdate=ge<YYYY-MM-01>&birthdate=lt<next month>",
    "sr_subject": "ServiceRequest?subject=Patient/<id>",
    "sr_status": "ServiceRequest?status=active&_count=20",
    "obs_code": "Observation?code=http://loinc.org|<code>",
    "lastupdated": "Patient?_lastUpdated=ge<instant of the last tenth>",
}
FAMILY_PREFIXES = ["Smi", "Pat", "Jon", "Kha", "Wil", "Tay", "Bro", "Sin", "Wal", "Hug"]
LOINC_CODES = ["44261-6", "70274-6", "8867-4", "29463-7", "85354-9"]


def store_paths(size: int, seed: int) -> dict[str, Path]:
    stem = f"n{size}-s{seed}-g{make_store.GENERATOR_VERSION}"
    return {"ndjson": CACHE / f"{stem}.ndjson", "sqlite": CACHE / f"{stem}.sqlite",
            "import": CACHE / f"{stem}.sqlite.import.json"}


def ensure_ndjson(size: int, seed: int) -> tuple[Path, dict[str, Any]]:
    paths = store_paths(size, seed)
    manifest = make_store.manifest_path(paths["ndjson"])
    if paths["ndjson"].exists() and manifest.exists():
        return paths["ndjson"], json.loads(manifest.read_text())
    CACHE.mkdir(parents=True, exist_ok=True)
    print(f"search_at_scale: generating {size:,} resources -> {paths['ndjson']}", file=sys.stderr, flush=True)
    return paths["ndjson"], make_store.generate(paths["ndjson"], size, seed)


def run_import(ndjson: Path, database_url: str, timeout: float, batch_size: int) -> dict[str, Any]:
    t0 = time.monotonic()
    proc = subprocess.run(
        [CAREBRIDGE, "import", str(ndjson), "--database-url", database_url, "--quiet",
         "--batch-size", str(batch_size)],
        capture_output=True, text=True, timeout=timeout, cwd=str(ROOT),
    )
    seconds = time.monotonic() - t0
    summary = (proc.stdout.strip().splitlines() or [""])[-1]
    if proc.returncode != 0:
        raise RuntimeError(f"carebridge import failed ({proc.returncode}): {summary} {proc.stderr[-800:]}")
    n = sum(1 for _ in ndjson.open("rb"))
    return {"seconds": round(seconds, 1), "resources": n, "per_s": round(n / seconds, 1), "summary": summary,
            "batch_size": batch_size, "commit": git_commit(), "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def ensure_sqlite(size: int, seed: int, rebuild: bool, timeout: float, batch_size: int) -> tuple[Path, dict]:
    paths = store_paths(size, seed)
    ndjson, _ = ensure_ndjson(size, seed)
    if not rebuild and paths["sqlite"].exists() and paths["import"].exists():
        return paths["sqlite"], json.loads(paths["import"].read_text())
    for suffix in ("", "-wal", "-shm"):
        Path(str(paths["sqlite"]) + suffix).unlink(missing_ok=True)
    paths["import"].unlink(missing_ok=True)
    print(f"search_at_scale: importing {ndjson.name} into SQLite", file=sys.stderr, flush=True)
    info = run_import(ndjson, f"sqlite:///{paths['sqlite']}", timeout, batch_size)
    info["store_bytes"] = paths["sqlite"].stat().st_size
    paths["import"].write_text(json.dumps(info, indent=1) + "\n")
    print(f"search_at_scale: imported {info['resources']:,} in {info['seconds']} s ({info['per_s']:,.0f}/s)",
          file=sys.stderr, flush=True)
    return paths["sqlite"], info


class Searches:
    """The request paths of each search, varied over the store's samples, with their checks."""

    def __init__(self, manifest: dict[str, Any], lastupdated: str, seed: int):
        import random

        self.rng = random.Random(seed)
        self.patients = manifest["patient_samples"]
        self.subjects = manifest["service_request_subjects"] or [p[0] for p in self.patients]
        self.lastupdated = lastupdated
        self.i = 0

    def make(self, name: str) -> tuple[str, str | None]:
        """(path and query, the Patient id the answer must hold or None)."""
        self.i += 1
        r = self.rng
        if name == "identifier":
            pid, nhs = self.patients[self.i % len(self.patients)]
            return f"/Patient?identifier={quote(NHS, safe=':/')}%7C{nhs}", pid
        if name == "family":
            return f"/Patient?family={FAMILY_PREFIXES[self.i % len(FAMILY_PREFIXES)]}", None
        if name == "birthdate":
            y, m = r.randrange(1935, 2011), r.randrange(1, 13)
            ny, nm = (y + 1, 1) if m == 12 else (y, m + 1)
            return f"/Patient?birthdate=ge{y}-{m:02d}-01&birthdate=lt{ny}-{nm:02d}-01", None
        if name == "sr_subject":
            return f"/ServiceRequest?subject=Patient/{self.subjects[self.i % len(self.subjects)]}", None
        if name == "sr_status":
            return "/ServiceRequest?status=active&_count=20", None
        if name == "obs_code":
            return f"/Observation?code=http://loinc.org%7C{LOINC_CODES[self.i % len(LOINC_CODES)]}", None
        if name == "lastupdated":
            return f"/Patient?_lastUpdated=ge{quote(self.lastupdated)}", None
        raise KeyError(name)


def check(resp: Any, want: str | None) -> tuple[str | None, int]:
    if resp.status_code != 200:
        return f"status {resp.status_code}: {resp.text[:200]}", 0
    body = resp.json()
    if body.get("resourceType") != "Bundle" or body.get("type") != "searchset":
        return f"not a searchset: {resp.text[:200]}", 0
    entries = [e for e in body.get("entry") or [] if (e.get("search") or {}).get("mode", "match") == "match"]
    if want is not None and want not in [(e.get("resource") or {}).get("id") for e in entries]:
        return f"Patient/{want} not in the answer", len(entries)
    return None, len(entries)


def marker_instant(client: Any, server: Server, manifest: dict[str, Any]) -> str:
    pid = manifest["lastupdated_marker_patient"]
    resp = client.get(f"{server.base}/Patient/{pid}", headers=server.headers)
    resp.raise_for_status()
    return str(resp.json()["meta"]["lastUpdated"])


def time_searches(server: Server, manifest: dict[str, Any], names: list[str], requests: int, warmup: int,
                  time_cap: float, seed: int) -> dict[str, Any]:
    import httpx

    out: dict[str, Any] = {}
    with httpx.Client(headers=server.headers, timeout=60, trust_env=False,
                      limits=httpx.Limits(max_connections=1, max_keepalive_connections=1)) as client:
        searches = Searches(manifest, marker_instant(client, server, manifest), seed)
        out["_lastupdated_threshold"] = searches.lastupdated
        for name in names:
            for _ in range(warmup):
                path, _want = searches.make(name)
                client.get(server.base + path)
            latencies: list[float] = []
            errors, first_error, matches = 0, None, []
            deadline = time.monotonic() + time_cap
            example = None
            for _ in range(requests):
                if time.monotonic() > deadline:
                    break
                path, want = searches.make(name)
                example = example or path
                t0 = time.perf_counter()
                resp = client.get(server.base + path)
                elapsed = time.perf_counter() - t0
                problem, n = check(resp, want)
                if problem:
                    errors += 1
                    first_error = first_error or f"{path}: {problem}"
                else:
                    latencies.append(elapsed)
                    matches.append(n)
            res = {"search": DESCRIPTIONS[name], "example": example, "ok": len(latencies), "errors": errors,
                   "first_error": first_error, **stats_ms(latencies),
                   "mean_first_page_matches": round(sum(matches) / len(matches), 1) if matches else 0}
            out[name] = res
            print(f"  {name:12s} ok {res['ok']:4d} err {errors:3d} p50 {res['p50_ms']} ms p90 {res['p90_ms']} ms "
                  f"p99 {res['p99_ms']} ms first-page matches {res['mean_first_page_matches']}"
                  + (f"  first error: {first_error}" if first_error else ""), file=sys.stderr, flush=True)
    return out


def explain(database_url: str, manifest: dict[str, Any], names: list[str], lastupdated: str) -> dict[str, Any]:
    """The plan of each search's SQL, as the product's repository compiles it: SQLite's EXPLAIN
    QUERY PLAN, or PostgreSQL's EXPLAIN (ANALYZE, BUFFERS)."""
    import sqlite3
    from urllib.parse import parse_qsl

    from sqlalchemy import event

    sys.path.insert(0, str(ROOT))
    from server.consent.context import AccessContext
    from server.definitions.search_parameters import default_registry
    from server.store.engine import make_engine
    from server.store.repository import Repository

    engine = make_engine(database_url)
    sqlite = engine.dialect.name == "sqlite"
    captured: list[tuple[str, Any]] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _capture(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT"):
            captured.append((statement, parameters))

    repo = Repository(engine, default_registry(), base_url="http://127.0.0.1/fhir")
    searches = Searches(manifest, lastupdated, 0)
    raw = sqlite3.connect(f"file:{database_url.split('///', 1)[1]}?mode=ro", uri=True) if sqlite else None
    plans: dict[str, Any] = {}
    for name in names:
        path, _ = searches.make(name)
        rtype, _, qs = path.lstrip("/").partition("?")
        captured.clear()
        query = repo.parse_search([rtype], parse_qsl(qs))
        t0 = time.perf_counter()
        repo.search(AccessContext.system("bench-explain"), query)
        in_process_ms = round((time.perf_counter() - t0) * 1000, 2)
        sql, params = captured[-1] if captured else ("", ())
        if not sql:
            lines: list[str] = []
        elif raw is not None:
            lines = [r[-1] for r in raw.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()]
        else:
            dbapi = engine.raw_connection()
            try:
                cur = dbapi.cursor()
                cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
                lines = [r[0] for r in cur.fetchall()]
                cur.close()
            finally:
                dbapi.close()
        plans[name] = {"path": path, "sql": sql, "params": params if isinstance(params, dict) else list(params),
                       "in_process_ms": in_process_ms, "plan": lines}
        print(f"-- {name}: {path}  ({in_process_ms} ms in process)\n{sql}\n  params {params}\n"
              + "\n".join(f"  {line}" for line in lines), file=sys.stderr)
    if raw is not None:
        raw.close()
    engine.dispose()
    return plans


def verdict(ratio: float | None) -> str:
    if ratio is None:
        return "-"
    if ratio <= 1.0:
        return "pass"
    return "tie" if ratio <= 1.15 else "fail"


def table(doc: dict[str, Any], kind: str = "sqlite") -> str:
    """Markdown: per search, p50/p90/p99 at each size of ``kind`` and the ratio of the p50s."""
    runs = doc[kind]
    sizes = sorted(runs, key=int)
    names = [n for n in doc["searches"] if any(n in runs[s]["searches"] for s in sizes)] or \
        [n for n in SEARCH_NAMES if any(n in runs[s]["searches"] for s in sizes)]
    many = len(sizes) > 1
    lines = [f"| search ({kind}) | " + " | ".join(f"p50 / p90 / p99 ms at {int(s):,}" for s in sizes)
             + (" | ratio of p50s | verdict" if many else "") + " |",
             "|---|" + "---|" * len(sizes) + ("---|---|" if many else "")]
    for name in names:
        cells = []
        for s in sizes:
            r = runs[s]["searches"].get(name)
            cells.append("-" if not r or not r["ok"] else
                         f"{r['p50_ms']:.2f} / {r['p90_ms']:.2f} / {r['p99_ms']:.2f}"
                         f" ({r['mean_first_page_matches']:g} on page)")
        line = f"| `{DESCRIPTIONS[name]}` | ".replace("|<", "\\|<") + " | ".join(cells)
        if many:
            lo = runs[sizes[0]]["searches"].get(name) or {}
            hi = runs[sizes[-1]]["searches"].get(name) or {}
            ratio = round(hi["p50_ms"] / lo["p50_ms"], 2) if lo.get("p50_ms") and hi.get("p50_ms") else None
            line += f" | {ratio if ratio is not None else '-'} | {verdict(ratio)}"
        lines.append(line + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10000,1000000", help="store sizes, smallest first")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--searches", default=",".join(SEARCH_NAMES), help=f"subset of {','.join(SEARCH_NAMES)}")
    p.add_argument("--requests", type=int, default=300, help="timed requests per search and size")
    p.add_argument("--warmup", type=int, default=30, help="untimed requests per search first")
    p.add_argument("--time-cap", type=float, default=60.0, help="seconds per search and size at most")
    p.add_argument("--import-timeout", type=float, default=5400.0, help="seconds per import at most")
    p.add_argument("--batch-size", type=int, default=1000, help="carebridge import --batch-size")
    p.add_argument("--rebuild", action="store_true", help="rebuild the cached SQLite stores")
    p.add_argument("--explain", action="store_true", help="print the query plans of the searches")
    p.add_argument("--postgres", default=None,
                   help=f"'auto' ({PG_ADMIN_DEFAULT}) or an admin URL: also import into a fresh PostgreSQL database")
    p.add_argument("--pg-sizes", default="1000000")
    p.add_argument("--pg-searches", default="identifier")
    p.add_argument("--out", default=None, help="results dir (default benchmarks/results/search-<time>)")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    names = [s.strip() for s in args.searches.split(",") if s.strip()]
    unknown = [n for n in names if n not in SEARCH_NAMES]
    if unknown:
        p.error(f"unknown searches {unknown}")
    out = results_dir("search", args.out)
    doc: dict[str, Any] = {"tool": "carebridge-search-at-scale", "started": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                           time.gmtime()), "machine": machine(), "commit": git_commit(), "sizes": sizes,
                           "searches": names, "requests": args.requests, "warmup": args.warmup,
                           "seed": args.seed, "sqlite": {}, "postgres": {}}
    for size in sizes:
        store, info = ensure_sqlite(size, args.seed, args.rebuild, args.import_timeout, args.batch_size)
        manifest = json.loads(make_store.manifest_path(store_paths(size, args.seed)["ndjson"]).read_text())
        print(f"search_at_scale: SQLite store of {size:,} ({store})", file=sys.stderr, flush=True)
        with Server(f"sqlite:///{store}", log_path=out / f"serve-sqlite-{size}.log") as server:
            res = time_searches(server, manifest, names, args.requests, args.warmup, args.time_cap, args.seed)
        entry = {"store": str(store), "import": info, "counts": manifest["counts"], "searches": res}
        if args.explain:
            entry["plans"] = explain(f"sqlite:///{store}", manifest, names, res["_lastupdated_threshold"])
        doc["sqlite"][str(size)] = entry
        (out / "search_at_scale.json").write_text(json.dumps(doc, indent=1) + "\n")
    if args.postgres:
        doc["searches"] = list(dict.fromkeys(names + [s.strip() for s in args.pg_searches.split(",") if s.strip()]))
        admin = PG_ADMIN_DEFAULT if args.postgres == "auto" else args.postgres
        pg_names = [s.strip() for s in args.pg_searches.split(",") if s.strip()]
        for size in [int(s) for s in args.pg_sizes.split(",") if s.strip()]:
            ndjson, manifest = ensure_ndjson(size, args.seed)
            with pg_database(admin, tag=f"search{size}") as url:
                print(f"search_at_scale: importing {size:,} into PostgreSQL", file=sys.stderr, flush=True)
                info = run_import(ndjson, url, args.import_timeout, args.batch_size)
                print(f"search_at_scale: imported into PostgreSQL in {info['seconds']} s ({info['per_s']:,.0f}/s)",
                      file=sys.stderr, flush=True)
                with Server(url, log_path=out / f"serve-pg-{size}.log") as server:
                    res = time_searches(server, manifest, pg_names, args.requests, args.warmup, args.time_cap,
                                        args.seed)
                entry = {"import": info, "searches": res}
                if args.explain:
                    entry["plans"] = explain(url, manifest, pg_names, res["_lastupdated_threshold"])
            doc["postgres"][str(size)] = entry
            (out / "search_at_scale.json").write_text(json.dumps(doc, indent=1) + "\n")
    doc["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    (out / "search_at_scale.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(f"\nresults: {out / 'search_at_scale.json'}\n")
    for kind in ("sqlite", "postgres"):
        if doc[kind]:
            print(table(doc, kind) + "\n")
    for kind in ("sqlite", "postgres"):
        for size, entry in doc[kind].items():
            imp = entry["import"]
            print(f"\nimport into {kind} of {int(size):,}: {imp['seconds']} s, {imp['per_s']:,.0f} resources/s"
                  f" ({imp.get('commit')}, {imp.get('at')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
