"""Demo data for ``make run``: fictional service users of the trust, with their GP
practices, carers, referrals to the Central Access Point, care plans and DIALOG responses.

Everything is in ``demo-bundle.json``, a transaction of PUTs with fixed ids, so loading
it again changes nothing: an identical update writes no new version. NHS numbers are in
the 999 range, which is never issued to real people. The DIALOG Questionnaire is taken
from the FHIR package and stored by a conditional update on its url and version, so the
stored copy follows the package and a second load writes nothing.

Loading also registers a SMART Backend Services client for each kind of caller the demo
Consents are about, with development keys under ``var/demo-clients/`` (``clients.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from carebridge.config import Settings
from server.consent.context import AccessContext

BUNDLE = Path(__file__).parent / "demo-bundle.json"


def questionnaire_entries() -> list[dict[str, Any]]:
    """The package's Questionnaires as conditional updates (by url and version)."""
    from server.definitions.package import default_package

    entries = []
    for f in default_package().of_type("Questionnaire"):
        q = f.resource
        entries.append({
            "fullUrl": f"Questionnaire/{q['id']}",
            "resource": q,
            "request": {"method": "PUT", "url": f"Questionnaire?url={q['url']}&version={q['version']}"},
        })
    return entries


def load_demo_data(settings: Settings) -> int:
    """Load the demo Bundle into the configured store and register the demo clients; returns
    how many resources were new."""
    from carebridge.demo.clients import register_demo_clients
    from server.api.app import build_state
    from server.auth.clients import ClientRegistry

    api = build_state(settings)
    bundle = orjson.loads(BUNDLE.read_bytes())
    ctx = AccessContext.system("carebridge-demo")
    results = api.repository.transaction(ctx, [*questionnaire_entries(), *bundle["entry"]], api.base)
    register_demo_clients(settings.var_dir, api.clients or ClientRegistry(api.repository.engine))
    api.repository.engine.dispose()
    return sum(1 for r in results if r.get("response", {}).get("status", "").startswith("201"))
