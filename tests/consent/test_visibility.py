"""Each kind of caller sees exactly what the consent model allows, through every channel."""

from __future__ import annotations

import pytest

from tests.consent.scenario import ALL, CALLERS, EXPECTED

TYPES = sorted({ref.split("/")[0] for ref in ALL})


def _ids(bundle: dict) -> set[str]:
    return {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle.get("entry", [])
            if e.get("search", {}).get("mode", "match") == "match"}


@pytest.mark.parametrize("caller", sorted(CALLERS))
def test_search_shows_exactly_what_is_shared(as_caller, caller):
    api = as_caller(caller)
    seen: set[str] = set()
    for rtype in TYPES:
        r = api.get(f"{rtype}?_count=100")
        assert r.status_code == 200, r.text
        seen |= _ids(r.json())
    assert seen == EXPECTED[caller]


@pytest.mark.parametrize("caller", sorted(CALLERS))
def test_read_answers_404_for_hidden_exactly_as_for_missing(as_caller, caller):
    api = as_caller(caller)
    for ref in sorted(ALL):
        rtype, id = ref.split("/")
        r = api.get(ref)
        if ref in EXPECTED[caller]:
            assert r.status_code == 200, (caller, ref, r.text)
        else:
            missing = api.get(f"{rtype}/no-such-{id}")
            assert r.status_code == missing.status_code == 404, (caller, ref)
            assert r.text.replace(ref, "REF") == missing.text.replace(f"{rtype}/no-such-{id}", "REF")
