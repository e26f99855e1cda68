"""A store holding the consent scenario, shared by a module's tests, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import Fhir
from tests.consent.scenario import CALLERS, RESOURCES


@pytest.fixture(scope="module")
def world(module_fhir: Fhir) -> Fhir:
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in RESOURCES
    ]}
    r = module_fhir.post("", bundle)
    assert r.status_code == 200, r.text
    return module_fhir


@pytest.fixture(scope="module")
def as_caller(world: Fhir, module_app: Any) -> Callable[[str], Fhir]:
    tokens = module_app.state.api.tokens

    def make(name: str) -> Fhir:
        claims = dict(CALLERS[name])
        scope = claims.pop("scope")
        return world.as_(tokens.issue(f"client-{name}", scope, **claims))

    return make
