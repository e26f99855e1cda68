#!/usr/bin/env python3
"""Profile validation cost: per resource, and on the API's create rate.

    .venv/bin/python benchmarks/validate_profile.py [--validations 2000] [--rounds 5] [--creates 200]

The resource is the package's CAP referral example grown to about 30 elements (counted as
every JSON object and value under the root, array items each), claiming ``cap-referral``.
The profile is compiled once, before timing. In each of ``--rounds`` interleaved rounds:

- ``profile``: ``Profiles.validate`` alone (the compiled cap-referral and the extension
  profiles it reaches), ``--validations`` times;
- ``invariants``: R4's invariants over the resource, ``--validations`` times;
- ``write path on`` / ``off``: ``ResourceValidator.validate`` as every write runs it, with
  and without R4 invariants and profiles (structure, fhir.resources and business rules stay);
- ``create on`` / ``off``: ``--creates`` sequential ``POST /fhir/ServiceRequest`` through the
  ASGI app (httpx ASGITransport) on a fresh SQLite store, the repository's validator
  switched between the two.

Reports the median of the rounds (mean microseconds per validation; creates per second)
and the min-max range. The machine is shared: read the figures as indications.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CB = "https://fhir.carebridge.example"


def referral() -> dict[str, Any]:
    res: dict[str, Any] = json.loads(
        (ROOT / "profiles/carebridge/example/ServiceRequest-example-cap-referral.json").read_text())
    del res["id"]
    res["extension"].append({"url": f"{CB}/StructureDefinition/triage-outcome", "valueCodeableConcept": {
        "coding": [{"system": f"{CB}/CodeSystem/triage-outcome", "code": "stream-for-assessment"}]}})
    res["subject"]["display"] = "Jane Smith"
    res["requester"]["display"] = "Dr A GP"
    res["note"] = [{"text": "Seen by the GP today; safety plan agreed."}]
    return res


def count_elements(value: Any) -> int:
    if isinstance(value, dict):
        return sum(1 + count_elements(v) for k, v in value.items() if k != "resourceType")
    if isinstance(value, list):
        return sum(count_elements(v) for v in value) + max(len(value) - 1, 0)
    return 0


def per_call(fn: Any, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e6


async def creates(client: Any, body: dict[str, Any], n: int, start: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        res = copy.deepcopy(body)
        res["identifier"][0]["value"] = f"bench-{start + i}"
        r = await client.post("/fhir/ServiceRequest", content=json.dumps(res),
                              headers={"Content-Type": "application/fhir+json"})
        if r.status_code != 201:
            raise SystemExit(f"create failed: {r.status_code} {r.text[:300]}")
    return n / (time.perf_counter() - t0)


async def create_rounds(rounds: int, n: int, body: dict[str, Any]) -> dict[str, list[float]]:
    import httpx

    from carebridge.config import Settings
    from server.api.app import create_app
    from server.validation.resource import ResourceValidator

    rates: dict[str, list[float]] = {"create on": [], "create off": []}
    with tempfile.TemporaryDirectory(prefix="bench-validate-") as tmp:
        settings = Settings(database_url=f"sqlite:///{tmp}/store.sqlite", var_dir=Path(tmp) / "var",
                            host="127.0.0.1", port=8080)
        app = create_app(settings)
        api = app.state.api
        token = api.tokens.issue("bench", "system/*.cruds")
        validators = {"create on": ResourceValidator(), "create off": ResourceValidator(profiles=False)}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080",
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            counter = 0
            for validator in validators.values():  # warm-up, untimed
                api.repository.validator = validator
                await creates(client, body, 20, counter)
                counter += 20
            for _ in range(rounds):
                for mode, validator in validators.items():
                    api.repository.validator = validator
                    rates[mode].append(await creates(client, body, n, counter))
                    counter += n
        api.repository.engine.dispose()
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--validations", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--creates", type=int, default=200)
    args = parser.parse_args()

    from server.validation.invariants import core_invariants
    from server.validation.profile import default_profiles
    from server.validation.resource import ResourceValidator

    res = referral()
    profiles = default_profiles()
    compiled = profiles.get(f"{CB}/StructureDefinition/cap-referral")
    assert compiled is not None
    on, off = ResourceValidator(), ResourceValidator(profiles=False)
    issues = on.issues(res)
    assert not [i for i in issues if i["severity"] == "error"], issues
    invariants = core_invariants()
    for _ in range(50):  # warm-up: compile every profile and invariant the resource reaches
        profiles.validate(compiled, res)
        on.validate(res)
        off.validate(res)
    timings: dict[str, list[float]] = {"profile": [], "invariants": [], "write path on": [], "write path off": []}
    n = args.validations
    for _ in range(args.rounds):
        timings["profile"].append(per_call(lambda: profiles.validate(compiled, res), n))
        timings["invariants"].append(per_call(lambda: invariants.check(res), n))
        timings["write path on"].append(per_call(lambda: on.validate(res), n))
        timings["write path off"].append(per_call(lambda: off.validate(res), n))
    rates = asyncio.run(create_rounds(args.rounds, args.creates, res))

    print(f"resource: cap-referral instance, {count_elements(res)} elements; {args.rounds} interleaved rounds; "
          "machine shared")
    for name, values in timings.items():
        print(f"{name:16} {statistics.median(values):8.1f} us per validation "
              f"[{min(values):.1f}-{max(values):.1f}] over {n} calls a round")
    for name, values in rates.items():
        print(f"{name:16} {statistics.median(values):8.1f} creates/s [{min(values):.1f}-{max(values):.1f}] "
              f"over {args.creates} sequential creates a round")
    ratio = statistics.median(rates["create on"]) / statistics.median(rates["create off"])
    print(f"create rate with profile validation / without: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
