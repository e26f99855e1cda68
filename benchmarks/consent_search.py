#!/usr/bin/env python3
"""First-page searches through the consent engine on a store of 1M resources, by kind of caller.

    .venv/bin/python benchmarks/consent_search.py [--size 1000000] [--requests 200]
        [--searches sr_status,obs_subject,identifier,family] [--callers custodian,gp,gp_none,carer]
        [--postgres auto|URL --pg-size 100000] [--explain] [--build-only]

The store is a consent world: a few thousand GP practices (Organizations with ODS codes, one
Practitioner each), the trust (RT5) and the city council (E06000016); Patients registered with a
practice, their ServiceRequests, Observations, Encounters, Conditions and CarePlans; for 70% of the
Patients a privacy Consent permitting their own practice for treatment (some also deny restricted
information, some also share the care plan with a carer, some share referrals with the council),
for 2% a relative not to be involved, none for the rest and none at all for the Patients of a few
"unshared" practices; social care Observations held by the council (custodian tag E06000016). It is
written as NDJSON chunks by ``make_store.Generator`` (the same Patients and clinical resources as
``search_at_scale.py``) and loaded chunk by chunk with ``carebridge import``; each loaded chunk is
recorded beside the store, so an interrupted build resumes at the next chunk. Both are cached under
``$CAREBRIDGE_BENCH_CACHE`` (default ``/tmp/carebridge-bench-stores``) by size, seed and version.

It serves the store with ``carebridge serve`` (real uvicorn, one worker) and, for each search, runs
the callers interleaved (request i of every caller before request i+1 of any), one in flight and
then 16 in flight (a thread pool over keep-alive connections), every answer checked (200, a
searchset Bundle). Callers: the custodian (RT5 clinician, TREAT), a GP practice whose Patients'
Consents permit it, a GP practice none of whose Patients permit it, a carer. Reports p50/p95 and
throughput per caller and the ratio to the custodian.

Every loop is bounded: ``--requests`` per search and caller, ``--time-cap`` seconds per search,
``--import-timeout`` per chunk.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
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
    percentile,
    pg_database,
    results_dir,
)
from search_at_scale import CACHE, run_import  # noqa: E402

WORLD_VERSION = 1
ODS = make_store.ODS_SYSTEM
NHS = make_store.NHS_SYSTEM
CUSTODIAN_TAG = "https://fhir.carebridge.example/CodeSystem/custodian"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
PURPOSE = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
TYPES = "http://hl7.org/fhir/resource-types"
COUNCIL = "E06000016"
#: share of N per kind of record (the directory, Consents and RelatedPersons come on top of Patients)
PATIENT_SHARE = 0.10
PRACTICES_PER_100K_PATIENTS = 2000
#: practices whose Patients have no Consent at all (the worst case for a GP: nothing to find)
UNSHARED_PRACTICES = 5
CLINICAL = {"Observation": 0.36, "Encounter": 0.20, "ServiceRequest": 0.16, "Condition": 0.14,
            "CarePlan": 0.09, "SocialCare": 0.05}
CHUNK = 100_000
SEARCH_NAMES = ("sr_status", "obs_subject", "identifier", "family")
DESCRIPTIONS = {
    "sr_status": "ServiceRequest?status=active",
    "obs_subject": "Observation?subject=Patient/<id>",
    "identifier": "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|<n>",
    "family": "Patient?family=<3-letter prefix>",
}
CALLER_NAMES = ("custodian", "gp", "gp_none", "carer")
FAMILY_PREFIXES = make_store.__dict__.get("FAMILY_PREFIXES") or ["Smi", "Pat", "Jon", "Kha", "Wil", "Tay",
                                                                  "Bro", "Sin", "Wal", "Hug"]


def _actor(ref: str, role: str = "IRCP") -> dict[str, Any]:
    return {"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                 "code": role}]}, "reference": {"reference": ref}}


def _consent(cid: str, pid: str, provisions: list[dict[str, Any]], base: str = "deny") -> dict[str, Any]:
    return {
        "resourceType": "Consent", "id": cid, "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                              "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{pid}"},
        "dateTime": "2025-06-01T10:00:00+00:00",
        "policyRule": {"coding": [{"system": ACT_CODE, "code": "OPTIN"}]},
        "provision": {"type": base, "provision": provisions} if provisions else {"type": base},
    }


def practice_ods(n: int) -> str:
    return f"Y{n:05d}"


class World:
    """The consent world's resources, as a deterministic stream."""

    def __init__(self, total: int, seed: int):
        self.g = make_store.Generator(seed)
        self.rng = random.Random(seed * 31 + 7)
        self.total = total
        self.n_patients = max(10, round(total * PATIENT_SHARE))
        self.n_practices = max(UNSHARED_PRACTICES + 2, self.n_patients * PRACTICES_PER_100K_PATIENTS // 100_000)
        self.counts: dict[str, int] = {}
        # samples for the searches: per practice, Patients with and without a Consent
        self.sample_patients: list[list[str]] = []  # [id, nhs, practice]
        #: every Patient of the first practices: [id, NHS number, whether a Consent shares it with them]
        self.by_practice: dict[int, list[list[Any]]] = {}
        self.shared: dict[int, list[str]] = {}  # practice -> consenting Patient ids
        self.carers: list[list[str]] = []  # [RelatedPerson id, Patient id]

    def _count(self, rtype: str) -> None:
        self.counts[rtype] = self.counts.get(rtype, 0) + 1

    def directory(self) -> Iterator[dict[str, Any]]:
        yield {"resourceType": "Organization", "id": "rt5", "name": "Leicestershire Partnership NHS Trust",
               "identifier": [{"system": ODS, "value": "RT5"}]}
        yield {"resourceType": "Organization", "id": "la", "name": "Leicester City Council",
               "identifier": [{"system": ODS, "value": COUNCIL}]}
        yield {"resourceType": "Practitioner", "id": "rt5-clinician", "name": [{"family": "Okafor"}]}
        for n in range(self.n_practices):
            yield {"resourceType": "Organization", "id": f"gp-{n}", "name": f"Practice {n}",
                   "identifier": [{"system": ODS, "value": practice_ods(n)}],
                   "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/organization-type",
                                         "code": "prov"}]}]}
            yield {"resourceType": "Practitioner", "id": f"gp-{n}-dr", "name": [{"family": f"Doctor{n}"}]}

    def stream(self) -> Iterator[dict[str, Any]]:
        yield from self.directory()
        r, g = self.rng, self.g
        per_patient = max(1.0, (self.total - 2 * self.n_practices - 3) / self.n_patients
                          - 1 - 0.70 - 0.02 - 0.10 * 0.70)
        kinds = list(CLINICAL)
        weights = [CLINICAL[k] for k in kinds]
        written = 2 * self.n_practices + 3
        recent: list[str] = []
        for i in range(self.n_patients):
            patient, nhs = g.patient()
            pid = patient["id"]
            practice = r.randrange(self.n_practices)
            patient["generalPractitioner"] = [{"reference": f"Organization/gp-{practice}",
                                               "display": f"Practice {practice}"}]
            yield patient
            written += 1
            recent.append(pid)
            del recent[:-50]
            if len(self.sample_patients) < 4000 or r.random() < 0.02:
                self.sample_patients.append([pid, nhs, str(practice)])
            unshared = practice < UNSHARED_PRACTICES
            shares = not unshared and r.random() < 0.70
            if practice < 50:
                self.by_practice.setdefault(practice, []).append([pid, nhs, shares])
            if shares:
                provisions: list[dict[str, Any]] = []
                gp = {"type": "permit", "actor": [_actor(f"Organization/gp-{practice}")],
                      "purpose": [{"system": PURPOSE, "code": "TREAT"}],
                      "class": [{"system": TYPES, "code": t} for t in
                                ("Patient", "ServiceRequest", "Observation", "Condition", "CarePlan", "Encounter")]}
                if r.random() < 0.20:
                    gp["provision"] = [{"type": "deny", "securityLabel": [{"system": CONFIDENTIALITY, "code": "R"}]}]
                provisions.append(gp)
                if r.random() < 0.10:
                    carer_id = f"carer-{pid}"
                    yield {"resourceType": "RelatedPerson", "id": carer_id, "patient": {"reference": f"Patient/{pid}"},
                           "relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
                                                         "code": "FAMMEMB"}]}],
                           "name": [{"family": patient["name"][0]["family"], "given": ["Carer"]}]}
                    written += 1
                    self.carers.append([carer_id, pid])
                    provisions.append({"type": "permit", "actor": [_actor(f"RelatedPerson/{carer_id}")],
                                       "class": [{"system": TYPES, "code": "CarePlan"}]})
                if r.random() < 0.15:
                    provisions.append({"type": "permit", "actor": [_actor("Organization/la")],
                                       "class": [{"system": TYPES, "code": "ServiceRequest"}]})
                yield _consent(f"consent-{pid}", pid, provisions)
                written += 1
                self.shared.setdefault(practice, []).append(pid)
            if r.random() < 0.02:
                yield _consent(f"consent-relative-{pid}", pid, [], base="deny") | {
                    "provision": {"type": "deny", "actor": [_actor(f"RelatedPerson/relative-{pid}")]}}
                written += 1
            # this Patient's records (most about them, some about a recent Patient)
            due = round((i + 1) * per_patient) - round(i * per_patient)
            for _ in range(due):
                if written >= self.total:
                    break
                kind = r.choices(kinds, weights)[0]
                subject = pid if r.random() < 0.8 else recent[r.randrange(len(recent))]
                yield self.clinical(kind, subject)
                written += 1
        while written < self.total:
            yield self.clinical("Observation", recent[r.randrange(len(recent))])
            written += 1

    def clinical(self, kind: str, pid: str) -> dict[str, Any]:
        g = self.g
        if kind == "SocialCare":
            res = g.observation(pid)
            res["meta"] = {"tag": [{"system": CUSTODIAN_TAG, "code": COUNCIL}],
                           "security": [{"system": ACT_CODE, "code": "SOC"}]}
            res["code"] = g.cc("http://snomed.info/sct", "225338004", "Social care assessment")
            for key in [k for k in res if k.startswith("value") or k == "component"]:
                del res[key]
            res["valueString"] = "Care and support needs assessed"
            return res
        res = {"Observation": g.observation, "Encounter": g.encounter, "ServiceRequest": g.service_request,
               "Condition": g.condition, "CarePlan": g.care_plan}[kind](pid)
        if kind == "Condition" and self.rng.random() < 0.05:
            res["meta"] = {"security": [{"system": CONFIDENTIALITY, "code": "R"}]}
        return res


def paths(size: int, seed: int) -> dict[str, Path]:
    stem = f"consent-n{size}-s{seed}-w{WORLD_VERSION}-g{make_store.GENERATOR_VERSION}"
    return {"dir": CACHE / f"{stem}.ndjson.d", "manifest": CACHE / f"{stem}.manifest.json",
            "sqlite": CACHE / f"{stem}.sqlite", "done": CACHE / f"{stem}.sqlite.chunks.json"}


def ensure_ndjson(size: int, seed: int) -> tuple[list[Path], dict[str, Any]]:
    p = paths(size, seed)
    if p["manifest"].exists():
        manifest = json.loads(p["manifest"].read_text())
        return [Path(f) for f in manifest["chunks"]], manifest
    p["dir"].mkdir(parents=True, exist_ok=True)
    print(f"consent_search: generating {size:,} resources -> {p['dir']}", file=sys.stderr, flush=True)
    t0 = time.monotonic()
    world = World(size, seed)
    chunks: list[Path] = []
    fh = None
    n = 0
    for res in world.stream():
        if n % CHUNK == 0:
            if fh is not None:
                fh.close()
            chunks.append(p["dir"] / f"chunk-{len(chunks):03d}.ndjson")
            fh = chunks[-1].open("wb")
        assert fh is not None
        world._count(res["resourceType"])
        fh.write(make_store.dumps(res) + b"\n")
        n += 1
    if fh is not None:
        fh.close()
    shared = {str(k): v[:200] for k, v in world.shared.items()}
    manifest = {"tool": "carebridge-consent-world", "version": WORLD_VERSION, "seed": seed, "resources": n,
                "counts": world.counts, "practices": world.n_practices, "unshared_practices": UNSHARED_PRACTICES,
                "chunks": [str(c) for c in chunks], "patient_samples": world.sample_patients,
                "shared_by_practice": shared, "by_practice": {str(k): v for k, v in world.by_practice.items()},
                "carers": world.carers[:2000],
                "seconds": round(time.monotonic() - t0, 1)}
    p["manifest"].write_text(json.dumps(manifest) + "\n")
    return chunks, manifest


def ensure_sqlite(size: int, seed: int, rebuild: bool, timeout: float, batch_size: int) -> tuple[Path, dict]:
    """The SQLite store, loaded chunk by chunk; a chunk recorded as loaded is not loaded again."""
    p = paths(size, seed)
    chunks, manifest = ensure_ndjson(size, seed)
    if rebuild:
        for suffix in ("", "-wal", "-shm"):
            Path(str(p["sqlite"]) + suffix).unlink(missing_ok=True)
        p["done"].unlink(missing_ok=True)
    done: dict[str, Any] = json.loads(p["done"].read_text()) if p["done"].exists() else {"chunks": {}}
    for chunk in chunks:
        if chunk.name in done["chunks"]:
            continue
        print(f"consent_search: importing {chunk.name} into {p['sqlite'].name}", file=sys.stderr, flush=True)
        info = run_import(chunk, f"sqlite:///{p['sqlite']}", timeout, batch_size)
        done["chunks"][chunk.name] = info
        p["done"].write_text(json.dumps(done, indent=1) + "\n")
        print(f"consent_search: {chunk.name}: {info['resources']:,} in {info['seconds']} s "
              f"({info['per_s']:,.0f}/s)", file=sys.stderr, flush=True)
    seconds = sum(c["seconds"] for c in done["chunks"].values())
    return p["sqlite"], {"seconds": round(seconds, 1), "resources": manifest["resources"],
                         "per_s": round(manifest["resources"] / seconds, 1) if seconds else None,
                         "store_bytes": p["sqlite"].stat().st_size}


# -- the callers and their searches -------------------------------------------------------------
def pick_practices(manifest: dict[str, Any]) -> tuple[int, int]:
    """(a practice with the most Patients sharing with it, an unshared practice)."""
    by = {int(k): v for k, v in manifest["by_practice"].items()}
    shared = max((k for k in by if k >= manifest["unshared_practices"]), key=lambda k: sum(1 for p in by[k] if p[2]))
    return shared, 0


def caller_claims(name: str, manifest: dict[str, Any]) -> dict[str, str]:
    gp, none = pick_practices(manifest)
    if name == "custodian":
        return {"organization": "RT5", "fhir_user": "Practitioner/rt5-clinician", "purpose_of_use": "TREAT"}
    if name == "gp":
        return {"organization": practice_ods(gp), "fhir_user": f"Practitioner/gp-{gp}-dr", "purpose_of_use": "TREAT"}
    if name == "gp_none":
        return {"organization": practice_ods(none), "fhir_user": f"Practitioner/gp-{none}-dr",
                "purpose_of_use": "TREAT"}
    if name == "carer":
        return {"organization": "RT5", "fhir_user": f"RelatedPerson/{manifest['carers'][0][0]}"}
    raise KeyError(name)


def token_for(server: Server, name: str, manifest: dict[str, Any]) -> str:
    import subprocess

    claims = caller_claims(name, manifest)
    args = [CAREBRIDGE, "token", "--client", f"bench-{name}", "--scope", "user/*.rs"]
    for key, value in claims.items():
        args += [f"--{key.replace('_', '-')}", value]
    return subprocess.run(args, env=server.env, capture_output=True, text=True, check=True, timeout=60).stdout.strip()


class Requests:
    """The request path of search ``name`` for caller ``who``, varied over the store's samples.

    The custodian and the GP ask about the same Patients (ones who share with that GP), so their
    answers differ only by what consent hides; the unshared GP asks about its own Patients (none of
    whom share with it); the carer about the Patient they care for."""

    def __init__(self, manifest: dict[str, Any]):
        gp, none = pick_practices(manifest)
        by = manifest["by_practice"]
        self.shared = [p for p in by[str(gp)] if p[2]]
        self.unshared = list(by[str(none)])
        self.carer_patient = manifest["carers"][0][1]
        nhs_of = {p[0]: p[1] for p in manifest["patient_samples"]}
        self.carer_nhs = nhs_of.get(self.carer_patient)

    def make(self, name: str, who: str, i: int) -> str:
        pool = self.unshared if who == "gp_none" else self.shared
        pid, nhs, _ = pool[i % len(pool)]
        if who == "carer":
            pid, nhs = self.carer_patient, self.carer_nhs or nhs
        if name == "sr_status":
            return "/ServiceRequest?status=active"
        if name == "obs_subject":
            return f"/Observation?subject=Patient/{pid}"
        if name == "identifier":
            return f"/Patient?identifier={quote(NHS, safe=':/')}%7C{nhs}"
        if name == "family":
            return f"/Patient?family={FAMILY_PREFIXES[i % len(FAMILY_PREFIXES)]}"
        raise KeyError(name)


def _check(resp: Any) -> tuple[str | None, int]:
    if resp.status_code != 200:
        return f"status {resp.status_code}: {resp.text[:200]}", 0
    body = resp.json()
    if body.get("resourceType") != "Bundle" or body.get("type") != "searchset":
        return f"not a searchset: {resp.text[:200]}", 0
    return None, sum(1 for e in body.get("entry") or [] if (e.get("search") or {}).get("mode", "match") == "match")


def _summary(latencies: list[float], seconds: float | None, matches: list[int], errors: int,
             first_error: str | None) -> dict[str, Any]:
    values = sorted(latencies)

    def ms(v: float | None) -> float | None:
        return None if v is None else round(v * 1000, 2)

    return {"ok": len(values), "errors": errors, "first_error": first_error,
            "p50_ms": ms(percentile(values, 0.50)), "p95_ms": ms(percentile(values, 0.95)),
            "per_s": round(len(values) / seconds, 1) if seconds else None,
            "mean_matches": round(sum(matches) / len(matches), 1) if matches else 0}


def time_searches(server: Server, manifest: dict[str, Any], names: list[str], callers: list[str], requests: int,
                  warmup: int, time_cap: float, in_flight: int = 16) -> dict[str, Any]:
    """Per search: each caller at 1 in flight (interleaved request by request), then each at
    ``in_flight`` in flight (interleaved in rounds of ``in_flight`` requests)."""
    import httpx

    reqs = Requests(manifest)
    tokens = {who: token_for(server, who, manifest) for who in callers}
    local = threading.local()

    def client() -> httpx.Client:
        c = getattr(local, "client", None)
        if c is None:
            c = local.client = httpx.Client(timeout=120, trust_env=False)
        return c

    def one(name: str, who: str, i: int) -> tuple[float, str | None, int]:
        path = reqs.make(name, who, i)
        headers = {"Authorization": f"Bearer {tokens[who]}", "Accept": "application/fhir+json"}
        t0 = time.perf_counter()
        resp = client().get(server.base + path, headers=headers)
        elapsed = time.perf_counter() - t0
        problem, n = _check(resp)
        return elapsed, (f"{path}: {problem}" if problem else None), n

    out: dict[str, Any] = {}
    with ThreadPoolExecutor(max_workers=in_flight) as pool:
        for name in names:
            examples = {w: reqs.make(name, w, 0) for w in callers}
            res: dict[str, Any] = {"search": DESCRIPTIONS[name], "examples": examples}
            for i in range(warmup):
                for who in callers:
                    one(name, who, i)
            # one in flight, callers interleaved request by request
            lat: dict[str, list[float]] = {w: [] for w in callers}
            busy = dict.fromkeys(callers, 0.0)
            found: dict[str, list[int]] = {w: [] for w in callers}
            errs = dict.fromkeys(callers, 0)
            first: dict[str, str | None] = dict.fromkeys(callers)
            deadline = time.monotonic() + time_cap
            for i in range(requests):
                if time.monotonic() > deadline:
                    break
                for who in callers:
                    elapsed, problem, n = one(name, who, i)
                    busy[who] += elapsed
                    if problem:
                        errs[who] += 1
                        first[who] = first[who] or problem
                    else:
                        lat[who].append(elapsed)
                        found[who].append(n)
            res["serial"] = {w: _summary(lat[w], busy[w], found[w], errs[w], first[w]) for w in callers}
            # many in flight: rounds of in_flight requests of one caller, callers taking turns
            lat = {w: [] for w in callers}
            wall = dict.fromkeys(callers, 0.0)
            found = {w: [] for w in callers}
            errs = dict.fromkeys(callers, 0)
            first = dict.fromkeys(callers)
            rounds = max(1, requests // in_flight)
            deadline = time.monotonic() + time_cap
            for k in range(rounds):
                if time.monotonic() > deadline:
                    break
                for who in callers:
                    t0 = time.perf_counter()
                    done = list(pool.map(lambda j, s=name, w=who, base=k * in_flight: one(s, w, base + j),
                                         range(in_flight)))
                    wall[who] += time.perf_counter() - t0
                    for elapsed, problem, n in done:
                        if problem:
                            errs[who] += 1
                            first[who] = first[who] or problem
                        else:
                            lat[who].append(elapsed)
                            found[who].append(n)
            res[f"in_flight_{in_flight}"] = {w: _summary(lat[w], wall[w], found[w], errs[w], first[w]) for w in callers}
            out[name] = res
            for mode in ("serial", f"in_flight_{in_flight}"):
                for who in callers:
                    s = res[mode][who]
                    print(f"  {name:12s} {mode:12s} {who:10s} ok {s['ok']:4d} err {s['errors']:2d} "
                          f"p50 {s['p50_ms']} p95 {s['p95_ms']} ms {s['per_s']}/s matches {s['mean_matches']}"
                          + (f"  first error: {s['first_error']}" if s["first_error"] else ""),
                          file=sys.stderr, flush=True)
    return out


def table(runs: dict[str, Any], callers: list[str], in_flight: int = 16) -> str:
    """Markdown: per search and caller, p50/p95 and throughput at 1 and N in flight, and the
    ratio of throughput to the custodian's."""
    lines = [f"| search | caller | 1 in flight: p50 / p95 ms | req/s | {in_flight} in flight: p50 / p95 ms | req/s "
             "| throughput vs custodian (1 / 16) | on page |", "|---|---|---|---|---|---|---|---|"]
    for res in runs.values():
        for who in callers:
            s, m = res["serial"][who], res[f"in_flight_{in_flight}"][who]
            cs, cm = res["serial"].get("custodian"), res[f"in_flight_{in_flight}"].get("custodian")

            def ratio(a: dict[str, Any], b: dict[str, Any] | None) -> str:
                return f"{a['per_s'] / b['per_s']:.2f}" if b and a.get("per_s") and b.get("per_s") else "-"

            lines.append(f"| `{res['search']}` | {who} | {s['p50_ms']} / {s['p95_ms']} | {s['per_s']} | "
                         f"{m['p50_ms']} / {m['p95_ms']} | {m['per_s']} | {ratio(s, cs)} / {ratio(m, cm)} | "
                         f"{s['mean_matches']:g} |".replace("|<", "\\|<"))
    return "\n".join(lines)


def explain(database_url: str, manifest: dict[str, Any], names: list[str], callers: list[str]) -> dict[str, Any]:
    """The plan of each search's SQL for each caller, compiled by the product's repository in this
    process: SQLite's EXPLAIN QUERY PLAN, PostgreSQL's EXPLAIN (ANALYZE, BUFFERS)."""
    import sqlite3
    from urllib.parse import parse_qsl

    from sqlalchemy import event

    sys.path.insert(0, str(ROOT))
    from server.auth.scopes import parse_scopes
    from server.consent.context import AccessContext
    from server.definitions.search_parameters import default_registry
    from server.store.engine import make_engine
    from server.store.repository import Repository

    engine = make_engine(database_url)
    captured: list[tuple[str, Any]] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _capture(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT"):
            captured.append((statement, parameters))

    repo = Repository(engine, default_registry(), base_url="http://127.0.0.1/fhir")
    reqs = Requests(manifest)
    sqlite = engine.dialect.name == "sqlite"
    raw = sqlite3.connect(f"file:{database_url.split('///', 1)[1]}?mode=ro", uri=True) if sqlite else None
    plans: dict[str, Any] = {}
    for name in names:
        for who in callers:
            path = reqs.make(name, who, 0)
            rtype, _, qs = path.lstrip("/").partition("?")
            ctx = AccessContext(client_id=f"bench-{who}", scopes=parse_scopes("user/*.rs"),
                                **caller_claims(who, manifest))
            captured.clear()
            query = repo.parse_search([rtype], parse_qsl(qs))
            t0 = time.perf_counter()
            page = repo.search(ctx, query)
            ms = round((time.perf_counter() - t0) * 1000, 2)
            sql, params = max(captured, key=lambda c: len(c[0])) if captured else ("", ())
            if raw is not None:
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
            plans[f"{name}/{who}"] = {"path": path, "in_process_ms": ms, "matches": len(page.matches),
                                      "statements": len(captured), "sql": sql, "plan": lines}
            print(f"-- {name} as {who}: {path} ({ms} ms in process, {len(page.matches)} on page, "
                  f"{len(captured)} statements)\n" + "\n".join(f"  {line}" for line in lines), file=sys.stderr)
    if raw is not None:
        raw.close()
    engine.dispose()
    return plans


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=1_000_000, help="resources in the store")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--searches", default=",".join(SEARCH_NAMES), help=f"subset of {','.join(SEARCH_NAMES)}")
    p.add_argument("--callers", default=",".join(CALLER_NAMES), help=f"subset of {','.join(CALLER_NAMES)}")
    p.add_argument("--requests", type=int, default=200, help="timed requests per search, caller and mode")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--in-flight", type=int, default=16)
    p.add_argument("--time-cap", type=float, default=120.0, help="seconds per search and mode at most")
    p.add_argument("--import-timeout", type=float, default=5400.0, help="seconds per chunk import at most")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--rebuild", action="store_true", help="rebuild the cached SQLite store")
    p.add_argument("--build-only", action="store_true", help="build (or resume building) the store and stop")
    p.add_argument("--explain", action="store_true", help="print the plan of each search per caller")
    p.add_argument("--postgres", default=None, help=f"'auto' ({PG_ADMIN_DEFAULT}) or an admin URL: also "
                   "import --pg-size resources into a fresh PostgreSQL database and time the same")
    p.add_argument("--pg-size", type=int, default=100_000)
    p.add_argument("--out", default=None, help="results dir (default benchmarks/results/consent-<time>)")
    args = p.parse_args(argv)
    names = [s for s in args.searches.split(",") if s]
    callers = [c for c in args.callers.split(",") if c]
    if "custodian" not in callers:
        callers.insert(0, "custodian")
    if set(names) - set(SEARCH_NAMES) or set(callers) - set(CALLER_NAMES):
        p.error("unknown search or caller")
    store, info = ensure_sqlite(args.size, args.seed, args.rebuild, args.import_timeout, args.batch_size)
    _, manifest = ensure_ndjson(args.size, args.seed)
    if args.build_only:
        print(json.dumps(info))
        return 0
    out = results_dir("consent", args.out)
    doc: dict[str, Any] = {"tool": "carebridge-consent-search", "started": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                           time.gmtime()), "machine": machine(), "commit": git_commit(), "size": args.size,
                           "counts": manifest["counts"], "import": info, "callers": {
                               w: caller_claims(w, manifest) for w in callers}, "sqlite": {}, "postgres": {}}
    with Server(f"sqlite:///{store}", log_path=out / "serve-sqlite.log") as server:
        doc["sqlite"] = time_searches(server, manifest, names, callers, args.requests, args.warmup, args.time_cap,
                                      args.in_flight)
    if args.explain:
        doc["sqlite_plans"] = explain(f"sqlite:///{store}", manifest, names, callers)
    (out / "consent_search.json").write_text(json.dumps(doc, indent=1) + "\n")
    if args.postgres:
        admin = PG_ADMIN_DEFAULT if args.postgres == "auto" else args.postgres
        chunks, pg_manifest = ensure_ndjson(args.pg_size, args.seed)
        with pg_database(admin, tag="consent") as url:
            t0 = time.monotonic()
            for chunk in chunks:
                run_import(chunk, url, args.import_timeout, args.batch_size)
            doc["postgres_import"] = {"resources": pg_manifest["resources"],
                                      "seconds": round(time.monotonic() - t0, 1)}
            with Server(url, log_path=out / "serve-pg.log") as server:
                doc["postgres"] = time_searches(server, pg_manifest, names, callers, args.requests, args.warmup,
                                                args.time_cap, args.in_flight)
            if args.explain:
                doc["postgres_plans"] = explain(url, pg_manifest, names, callers)
        doc["pg_size"] = args.pg_size
    doc["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    (out / "consent_search.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(f"\nresults: {out / 'consent_search.json'}\n\nSQLite, {args.size:,} resources:\n"
          + table(doc["sqlite"], callers, args.in_flight))
    if doc["postgres"]:
        print(f"\nPostgreSQL, {args.pg_size:,} resources:\n" + table(doc["postgres"], callers, args.in_flight))
    return 0


if __name__ == "__main__":
    sys.exit(main())
