"""The peers' REF^I12 generator, imported without leaving bytecode in the shared folder."""

from __future__ import annotations

import os
import sys
from pathlib import Path

PEERS = Path(os.environ.get("CAREBRIDGE_PEERS", Path(__file__).resolve().parents[2] / "shared" / "peers"))


def messages(n: int, seed: int = 20240311, run: str = "PERF") -> list[bytes]:
    sys.dont_write_bytecode = True
    sys.path.insert(0, str(PEERS / "hl7"))
    import refi12  # type: ignore[import-not-found]

    return [m.encode() for m in refi12.messages(n, seed=seed, run=run)]
