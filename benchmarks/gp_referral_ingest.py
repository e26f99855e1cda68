"""End to end into a fresh SQLite store: N REF^I12 messages from one file through
``carebridge ingest gp-referral`` (in-process), then the same file again (must create nothing).

    .venv/bin/python benchmarks/gp_referral_ingest.py [--messages 10000] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _referrals import messages

CAREBRIDGE = str(Path(sys.executable).with_name("carebridge"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--workers", type=int, help="passed to carebridge ingest (default: its own default)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="carebridge-bench-gp-"))
    src = work / "referrals.hl7"
    src.write_bytes(b"".join(m + b"\r" for m in messages(args.messages)))
    url = f"sqlite:///{work / 'store.sqlite'}"
    subprocess.run([CAREBRIDGE, "migrate", "--database-url", url], check=True, capture_output=True)
    extra = ["--workers", str(args.workers)] if args.workers is not None else []
    for label in ("first ingest", "re-ingest"):
        load = os.getloadavg()[0]
        start = time.perf_counter()
        done = subprocess.run([CAREBRIDGE, "ingest", "gp-referral", str(src), "--database-url", url, *extra],
                              capture_output=True, text=True)
        took = time.perf_counter() - start
        lines = done.stdout.splitlines()
        accepted = sum(1 for line in lines if line.startswith("accepted"))
        created = sum(int(line.rsplit(": ", 1)[1].split()[0]) for line in lines if line.startswith("accepted"))
        print(f"{label:12s} {len(lines)} messages, {accepted} accepted, {created} resources created, "
              f"{took:.1f} s, {len(lines) / took:,.0f} msgs/s (exit {done.returncode}; "
              f"load average {load:.1f} before)", flush=True)


if __name__ == "__main__":
    main()
