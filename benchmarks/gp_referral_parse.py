"""Parse and map REF^I12 messages on one core: carebridge's reader + mapping beside hl7apy's
eager parse of the very same messages, in one run.

    .venv/bin/python benchmarks/gp_referral_parse.py [--messages 2000] [--time-cap 20]
"""

from __future__ import annotations

import argparse
import os
import time

from _referrals import messages


def rate(fn, items: list[bytes], cap: float) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    done = 0
    for raw in items:
        fn(raw)
        done += 1
        if time.perf_counter() - start > cap:
            break
    return done / (time.perf_counter() - start), done


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--time-cap", type=float, default=20.0)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    items = messages(args.messages)

    from hl7apy.parser import parse_message

    from adapters.gp_referral.convert import convert
    from adapters.gp_referral.hl7 import decode, parse

    convert(items[0])
    results = {
        "carebridge parse only": rate(lambda r: parse(decode(r)), items, args.time_cap),
        "carebridge parse + map to a Bundle": rate(convert, items, args.time_cap),
        "hl7apy parse_message (eager, groups)": rate(
            lambda r: parse_message(r.decode().replace("\n", "\r")), items, args.time_cap),
    }
    for name, (per_s, n) in results.items():
        print(f"{name:40s} {per_s:10,.0f} msgs/s  ({n} messages)")
    ratio = results["carebridge parse + map to a Bundle"][0] / results["hl7apy parse_message (eager, groups)"][0]
    print(f"parse + map vs hl7apy: {ratio:.0f}x")


if __name__ == "__main__":
    main()
