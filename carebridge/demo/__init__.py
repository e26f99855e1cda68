"""Demo data for ``make run``: fictional service users of the trust, with their GP
practices, carers, referrals to the Central Access Point and care plans.

Everything is in ``demo-bundle.json``, a transaction of PUTs with fixed ids, so loading
it again changes nothing: an identical update writes no new version. NHS numbers are in
the 999 range, which is never issued to real people.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from carebridge.config import Settings
from server.consent.context import AccessContext

BUNDLE = Path(__file__).parent / "demo-bundle.json"


def load_demo_data(settings: Settings) -> int:
    """Load the demo Bundle into the configured store; returns how many resources were new."""
    from server.api.app import build_state

    api = build_state(settings)
    bundle = orjson.loads(BUNDLE.read_bytes())
    ctx = AccessContext.system("carebridge-demo")
    results = api.repository.transaction(ctx, bundle["entry"], api.base)
    api.repository.engine.dispose()
    return sum(1 for r in results if r.get("response", {}).get("status", "").startswith("201"))
