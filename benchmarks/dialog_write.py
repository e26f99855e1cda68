"""What a DIALOG response costs to store: the response and its 13 derived Observations.

In-process, through ``Repository.create`` on a fresh SQLite store (no HTTP): rounds of
``--per-round`` creates of each kind, interleaved (a Patient, a scored DIALOG response, an
in-progress one that gets no scores), ``--rounds`` times. Prints the median per create of
each kind over the rounds, and checks that every scored response has 13 Observations.
A measurement, not a test: nothing asserts on time.

    .venv/bin/python benchmarks/dialog_write.py [--rounds 7] [--per-round 40]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from server.consent.context import AccessContext  # noqa: E402
from server.definitions.search_parameters import default_registry  # noqa: E402
from server.store.engine import make_engine, migrate  # noqa: E402
from server.store.repository import Repository  # noqa: E402
from tests.dialog.dialogdata import response  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--per-round", type=int, default=40)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/bench.sqlite")
        migrate(engine)
        repo = Repository(engine, default_registry())
        ctx = AccessContext.system("bench")
        partial = response(status="in-progress")
        del partial["item"][6:]
        kinds: dict[str, Any] = {
            "Patient": {"resourceType": "Patient", "name": [{"family": "Bench"}]},
            "DIALOG completed (+13 Observations)": response(),
            "DIALOG in-progress (no scores)": partial,
        }
        times: dict[str, list[float]] = {k: [] for k in kinds}
        scored: list[str] = []
        for _ in range(args.rounds):
            for kind, body in kinds.items():
                start = time.perf_counter()
                for _ in range(args.per_round):
                    out = repo.create(ctx, copy.deepcopy(body))
                    if kind.startswith("DIALOG completed"):
                        scored.append(out.stored.id)
                times[kind].append((time.perf_counter() - start) / args.per_round * 1000)
        q = repo.parse_search(["Observation"], [("derived-from", f"QuestionnaireResponse/{scored[-1]}")])
        found = len(repo.search(ctx, q).matches)
        engine.dispose()
    print(f"{args.rounds} interleaved rounds of {args.per_round} creates each, SQLite, in-process")
    for kind, values in times.items():
        print(f"  {kind:<38} median {statistics.median(values):6.2f} ms/create  "
              f"[{min(values):.2f}-{max(values):.2f}]")
    print(f"  derived Observations of the last scored response: {found}")
    return 0 if found == 13 else 1


if __name__ == "__main__":
    raise SystemExit(main())
