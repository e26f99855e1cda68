"""The predicate that evaluates every criterion per row (used when very many rules apply to one
caller) decides exactly as the one built on the rules precomputed for the caller."""

from __future__ import annotations

import pytest

from server.consent import predicate
from tests.consent.scenario import ALL, CALLERS, EXPECTED

TYPES = sorted({ref.split("/")[0] for ref in ALL})


@pytest.mark.parametrize("limit", [0, 1])
@pytest.mark.parametrize("caller", sorted(CALLERS))
def test_per_row_predicate_shows_what_is_shared(as_caller, caller, limit, monkeypatch):
    monkeypatch.setattr(predicate, "APPLICABLE_LIMIT", limit)
    api = as_caller(caller)
    seen: set[str] = set()
    for rtype in TYPES:
        r = api.get(f"{rtype}?_count=100")
        assert r.status_code == 200, r.text
        seen |= {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in r.json().get("entry", [])
                 if e.get("search", {}).get("mode", "match") == "match"}
    assert seen == EXPECTED[caller]
