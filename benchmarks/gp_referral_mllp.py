"""MLLP throughput: the listener on a fresh SQLite store, C connections each sending its share
of N referrals one after the other (waiting for each ACK), every ACK checked to be AA.

    .venv/bin/python benchmarks/gp_referral_mllp.py [--messages 3000] [--connections 8]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from _referrals import messages

from adapters.gp_referral.mllp import MllpServer
from carebridge.config import Settings
from server.api.app import build_state


async def run(n: int, connections: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="carebridge-bench-mllp-"))
    state = build_state(Settings(database_url=f"sqlite:///{work / 'store.sqlite'}", var_dir=work))
    server = MllpServer(state.repository)
    port = await server.start("127.0.0.1", 0)
    items = messages(n, run="MLLP")
    shares = [items[i::connections] for i in range(connections)]

    async def client(share: list[bytes]) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        ok = 0
        for raw in share:
            writer.write(b"\x0b" + raw + b"\x1c\r")
            await writer.drain()
            reply = await reader.readuntil(b"\x1c\r")
            ok += b"\rMSA|AA|" in reply
        writer.close()
        return ok

    start = time.perf_counter()
    oks = await asyncio.gather(*(client(s) for s in shares))
    took = time.perf_counter() - start
    await server.stop()
    print(f"{sum(oks)} of {n} acknowledged AA over {connections} connections in {took:.1f} s: "
          f"{sum(oks) / took:,.0f} msgs/s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--connections", type=int, default=8)
    args = ap.parse_args()
    asyncio.run(run(args.messages, args.connections))


if __name__ == "__main__":
    main()
