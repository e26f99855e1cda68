"""Memory while streaming a large referral file: the file is read in 64 kB chunks, split into
messages and each converted to its Bundle (the path ``ingest`` and ``check`` share); peak RSS
is sampled as it goes. ``--land`` also lands every message in a fresh SQLite store the way
``carebridge ingest`` does (worker processes, settled heap), with the workers' RSS beside the
writer's.

    .venv/bin/python benchmarks/gp_referral_stream.py [--messages 100000] [--land]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from _referrals import messages


def rss_mb(pid: str = "self") -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except FileNotFoundError:  # a worker that has just exited
        return 0.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def workers_rss_mb() -> list[float]:
    """RSS of each child process (the ingest's workers), from /proc."""
    own = Path("/proc/self/task")
    children = [c for t in own.iterdir() for c in (t / "children").read_text().split()]
    return [rss_mb(c) for c in children]


def memory() -> str:
    kids = workers_rss_mb()
    extra = f", workers {' + '.join(f'{k:.0f}' for k in kids)} MB" if kids else ""
    return f"RSS {rss_mb():6.0f} MB{extra}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--land", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="carebridge-bench-stream-"))
    src = work / "referrals.hl7"
    with src.open("wb") as fh:  # written in slices so that the generator's list stays small too
        for start in range(0, args.messages, 5000):
            batch = messages(min(5000, args.messages - start), seed=start + 1, run=f"S{start // 5000:03d}")
            fh.write(b"".join(m + b"\r" for m in batch))
    from adapters.gp_referral.convert import convert
    from adapters.gp_referral.hl7 import split_stream

    def raws():  # type: ignore[no-untyped-def]
        with src.open("rb") as fh:
            yield from split_stream(iter(lambda: fh.read(1 << 16), b""))

    print(f"file {src.stat().st_size / 1e6:.0f} MB; RSS before {rss_mb():.0f} MB", flush=True)
    start = time.perf_counter()
    n = 0
    if args.land:
        from adapters.gp_referral.ingest import default_workers, ingest
        from carebridge import heap
        from carebridge.config import Settings
        from server.api.app import build_state

        state = build_state(Settings(database_url=f"sqlite:///{work / 's.sqlite'}", var_dir=work))
        heap.settle()
        stream = (o for _, o in ingest(state.repository, raws(), workers=default_workers()))
    else:
        stream = (convert(r) for r in raws())
    for _ in stream:
        n += 1
        if n % (args.messages // 10 or 1) == 0:
            print(f"{n:>8} messages  {memory()}  {n / (time.perf_counter() - start):,.0f} msgs/s",
                  flush=True)
    print(f"done: {n} messages in {time.perf_counter() - start:.0f} s; RSS after {rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
