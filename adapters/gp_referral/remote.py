"""Landing referrals on a running server: each message's Bundle POSTed as one transaction."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import httpx

from adapters.common.result import Outcome, Problem
from adapters.gp_referral.convert import convert


def ingest_remote(base: str, raws: Iterable[bytes], *, token: str | None = None,
                  client: httpx.Client | None = None) -> Iterator[Outcome]:
    token = token or os.environ.get("CAREBRIDGE_TOKEN")
    headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    http = client or httpx.Client(headers=headers, timeout=60)
    for raw in raws:
        c = convert(raw)
        key = c.key or c.control_id or "(no control id)"
        if not c.ok or c.bundle is None:
            yield Outcome(key, False, list(c.problems))
            continue
        # landed before by this mapping: nothing to do (and an old message must not roll back a newer one)
        if http.get(f"{base.rstrip('/')}/Provenance/{c.provenance_id}").status_code == 200:
            yield Outcome(key, True)
            continue
        if c.must_exist:
            rtype, _, qs = c.must_exist.partition("?")
            system_value = qs.split("=", 1)[1]
            found = http.get(f"{base.rstrip('/')}/{rtype}", params={"identifier": system_value, "_summary": "count"})
            if found.status_code != 200 or not found.json().get("total"):
                yield Outcome(key, False, [Problem(f"no referral matches {system_value}: a modify, cancel or "
                                                   "status update needs the original REF^I12 first",
                                                   "RF1", 1, 6, 0, "204")])
                continue
        r = http.post(base.rstrip("/"), json=c.bundle, headers=headers)
        if r.status_code != 200:
            text = r.text[:300]
            yield Outcome(key, False, [Problem(f"the server answered {r.status_code}: {text}",
                                               reject=r.status_code >= 500)])
            continue
        statuses = [e.get("response", {}).get("status", "") for e in r.json().get("entry", [])]
        yield Outcome(key, True, created=sum(1 for s in statuses if s.startswith("201")))

