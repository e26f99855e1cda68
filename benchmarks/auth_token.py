"""Costs of SMART Backend Services, in process on a fresh SQLite store under a temp dir.

1. ``TokenService.verify`` of a cached token, with and without the disabled-client check
   (the registry's cached status), interleaved 5 x 200,000 calls; medians in ns per call.
2. ``POST /auth/token`` end to end through the ASGI app (assertion check, jti insert, token
   signing), RS384 and ES384 interleaved, 400 each (first 20 dropped); p50 and p95.

Measurements, not tests: nothing here asserts on time. Usage: ``.venv/bin/python benchmarks/auth_token.py``.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from pathlib import Path

from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from carebridge.config import Settings
from server.api.app import create_app
from server.auth.backend_services import ASSERTION_TYPE
from server.auth.clients import Client
from server.auth.tokens import TokenService

BASE = "http://127.0.0.1:8080"
CALLS = 200_000
REQUESTS = 400


def main() -> None:
    var = Path(tempfile.mkdtemp(prefix="carebridge-auth-bench-"))
    app = create_app(Settings(database_url=f"sqlite:///{var / 'store.sqlite'}", var_dir=var))
    api = app.state.api
    rsa = RSAKey.generate_key(2048, parameters={"kid": "r"}, private=True)
    ec = ECKey.generate_key("P-384", parameters={"kid": "e"}, private=True)
    api.clients.save(Client("bench", "bench", "RT5", ("system/*.rs",),
                            jwks={"keys": [rsa.as_dict(private=False), ec.as_dict(private=False)]}))

    plain = TokenService(var)
    token = api.tokens.issue("bench", "system/*.rs")
    api.tokens.verify(token)
    plain.verify(token)

    def per_call(service: TokenService) -> float:
        start = time.perf_counter()
        for _ in range(CALLS):
            service.verify(token)
        return (time.perf_counter() - start) / CALLS * 1e9

    without, with_check = [], []
    for _ in range(5):
        without.append(per_call(plain))
        with_check.append(per_call(api.tokens))
    print(f"verify, cached token: {statistics.median(without):.0f} ns/call without the disabled-client check, "
          f"{statistics.median(with_check):.0f} with it")

    url = f"{BASE}/auth/token"
    latencies: dict[str, list[float]] = {"RS384": [], "ES384": []}
    with TestClient(app, base_url=BASE) as http:
        for i in range(REQUESTS):
            for alg, key in (("RS384", rsa), ("ES384", ec)):
                now = int(time.time())
                assertion = jwt.encode({"alg": alg, "kid": key.kid}, {
                    "iss": "bench", "sub": "bench", "aud": url, "exp": now + 200, "jti": uuid.uuid4().hex,
                }, key, algorithms=[alg])
                form = {"grant_type": "client_credentials", "scope": "system/*.rs",
                        "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}
                start = time.perf_counter()
                r = http.post("/auth/token", data=form)
                elapsed = time.perf_counter() - start
                if r.status_code != 200:
                    raise SystemExit(f"token request failed: {r.status_code} {r.text}")
                if i >= 20:
                    latencies[alg].append(elapsed * 1000)
    for alg, values in latencies.items():
        values.sort()
        print(f"POST /auth/token {alg}: p50 {values[len(values) // 2]:.2f} ms, "
              f"p95 {values[int(len(values) * 0.95)]:.2f} ms (n={len(values)})")
    api.repository.engine.dispose()


if __name__ == "__main__":
    main()
