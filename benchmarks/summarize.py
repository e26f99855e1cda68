#!/usr/bin/env python3
"""Tables from the JSON of ``http_vs_medplum.sh`` (the peers' loadgen output).

    .venv/bin/python benchmarks/summarize.py RESULTS_DIR [RESULTS_DIR ...]

Prints, as Markdown: each server's figures per scenario; carebridge's ratios to Medplum in
memory from the same interleaved run (several dirs: the median ratio and its range); and the
targets with pass, tie or fail. A ratio within 15% of its threshold (0.85-1.15 for a 1.0x
target) is a tie, as the peers' README asks on this noisy machine: rerun before reading more
into it. Standard library only.
"""

from __future__ import annotations

import json
import pathlib
import statistics
import sys

ANCHOR = "medplum-memory"
ROWS = [("create_seq", "create, 1 client"), ("create_c16", "create, 16 in flight"),
        ("read_seq", "read by id, 1 client"), ("read_c16", "read by id, 16 in flight"),
        ("search_seq", "search identifier, 1 client"), ("search_c16", "search identifier, 16 in flight"),
        ("transaction", "transaction of 50, 1 client")]
RATIO_TARGETS = [("create_c16", "create, 16 in flight"), ("read_c16", "read by id, 16 in flight"),
                 ("search_c16", "search identifier, 16 in flight")]
TIE = 0.15


def load(paths: list[str]) -> list[dict]:
    """One list of per-server documents per run (a run is one loadgen output file)."""
    runs = []
    for a in paths:
        p = pathlib.Path(a)
        for f in (sorted(p.glob("*.json")) if p.is_dir() else [p]):
            try:
                doc = json.loads(f.read_text())
            except (OSError, ValueError):
                continue
            if doc.get("tool") == "carebridge-peers-loadgen-set":
                runs.append({d["label"]: d for d in doc["runs"]})
            elif doc.get("tool") == "carebridge-peers-loadgen":
                runs.append({doc["label"]: doc})
    return runs


def fig(res: dict | None, key: str) -> float | None:
    if not res or "skipped" in res or not res.get("ok"):
        return None
    return res.get(key)


def med(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def spread(values: list) -> str:
    values = [v for v in values if v is not None]
    return f" ({min(values):,.2f}-{max(values):,.2f})" if len(values) > 1 else ""


def verdict_at_least(value: float | None, threshold: float, tie: bool = True) -> str:
    if value is None:
        return "no figure"
    if tie and abs(value - threshold) <= TIE * threshold:
        return "tie"
    return "pass" if value >= threshold else "fail"


def main(argv: list[str]) -> int:
    runs = load(argv or ["."])
    if not runs:
        print("summarize: no loadgen JSON found", file=sys.stderr)
        return 1
    labels: list[str] = []
    for r in runs:
        labels += [k for k in r if k not in labels]
    labels.sort(key=lambda k: k != ANCHOR)  # the anchor first, the rest in run order
    first = next(iter(runs[0].values()))
    m = first.get("machine", {})
    print(f"Machine: nproc {m.get('nproc')}, {m.get('cpu', '?')}, Python {m.get('python')}, httpx "
          f"{m.get('httpx')}; started {first.get('started')}; {len(runs)} run(s)"
          + ("; medians, range in brackets" if len(runs) > 1 else "") + "\n")

    def cell(label: str, key: str) -> str:
        rs = [r.get(label, {}).get("scenarios", {}).get(key) for r in runs]
        rps = [fig(x, "rps") for x in rs]
        if med(rps) is None:
            x = rs[0] or {}
            return f"skipped ({x['skipped']})" if "skipped" in x else \
                f"no ok answers ({x.get('first_error') or x.get('statuses')})" if x else "-"
        errors = sum((x or {}).get("errors", 0) for x in rs)
        text = (f"{med(rps):,.0f}/s, p50 {med([fig(x, 'p50_ms') for x in rs]):.2f} ms, "
                f"p99 {med([fig(x, 'p99_ms') for x in rs]):.1f} ms")
        return text + (f", {errors} errors" if errors else "")

    def cpu(label: str, key: str) -> str:
        rs = [r.get(label, {}).get("scenarios", {}).get(key) for r in runs]
        c, s = med([fig(x, "client_cpu_pct") for x in rs]), med([fig(x, "server_cpu_pct") for x in rs])
        return "-" if c is None else f"{c:.0f}% / {s:.0f}%" if s is not None else f"{c:.0f}% / ?"

    print("| scenario | " + " | ".join(labels) + " |")
    print("|---|" + "---|" * len(labels))
    for key, title in ROWS:
        print(f"| {title} | " + " | ".join(cell(lab, key) for lab in labels) + " |")
    for key, title in (("create_c16", "create 16"), ("read_c16", "read 16"), ("search_c16", "search 16")):
        print(f"| CPU client / server, {title} | " + " | ".join(cpu(lab, key) for lab in labels) + " |")
    print("| Patients in store at search | " + " | ".join(
        str((runs[0].get(lab, {}).get("scenarios", {}).get("search_c16") or {}).get("patients_in_store", "-"))
        for lab in labels) + " |")
    print("| transaction entries/s | " + " | ".join(
        (lambda v: "-" if v is None else f"{v:,.0f}")(med([fig(r.get(lab, {}).get("scenarios", {}).get(
            "transaction"), "entries_per_s") for r in runs])) for lab in labels) + " |")

    others = [lab for lab in labels if lab != ANCHOR]
    if ANCHOR in labels and others:
        print(f"\nRatios to {ANCHOR} (throughput, same interleaved run; >1 is faster than Medplum):\n")
        print("| scenario | " + " | ".join(others) + " |")
        print("|---|" + "---|" * len(others))
        ratios: dict[tuple[str, str], float | None] = {}
        for key, title in ROWS:
            cells = []
            for lab in others:
                per_run = []
                for r in runs:
                    a = fig(r.get(ANCHOR, {}).get("scenarios", {}).get(key), "rps")
                    b = fig(r.get(lab, {}).get("scenarios", {}).get(key), "rps")
                    per_run.append(b / a if a and b is not None else None)
                ratios[(lab, key)] = med(per_run)
                cells.append("-" if med(per_run) is None else f"{med(per_run):.2f}x{spread(per_run)}")
            print(f"| {title} | " + " | ".join(cells) + " |")

    print("\nTargets (tie: within 15% of a ratio threshold; rerun):\n")
    print("| target | " + " | ".join(others or labels) + " |")
    print("|---|" + "---|" * len(others or labels))

    def absolute(label: str, key: str, field: str) -> float | None:
        return med([fig(r.get(label, {}).get("scenarios", {}).get(key), field) for r in runs])

    lines = []
    cs = [(absolute(lab, "create_seq", "rps"), absolute(lab, "create_seq", "p99_ms")) for lab in others]
    lines.append(("create, 1 client >= 800/s", [
        "-" if v is None else f"{v:,.0f}/s: {'pass' if v >= 800 else 'fail'}" for v, _ in cs]))
    lines.append(("create, 1 client p99 < 20 ms", [
        "-" if p is None else f"{p:.1f} ms: {'pass' if p < 20 else 'fail'}" for _, p in cs]))
    rc = [absolute(lab, "read_c16", "rps") for lab in others]
    lines.append(("read by id, 16 in flight >= 2,000/s", [
        "-" if v is None else f"{v:,.0f}/s: {'pass' if v >= 2000 else 'fail'}" for v in rc]))
    if ANCHOR in labels:
        for key, title in RATIO_TARGETS:
            lines.append((f"{title} >= 1.0x Medplum", [
                "-" if ratios.get((lab, key)) is None else
                f"{ratios[(lab, key)]:.2f}x: {verdict_at_least(ratios[(lab, key)], 1.0)}" for lab in others]))
    for title, cells in lines:
        print(f"| {title} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
