"""Helpers for the search tests: run a search over HTTP and name its hits by label."""

from __future__ import annotations

from typing import Any

from tests.conftest import Fhir


def load(fhir: Fhir, items: list[tuple[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Create each resource in order; resources may be callables taking the labels made so far."""
    made: dict[str, dict[str, Any]] = {}
    for label, res in items:
        body = res(made) if callable(res) else res
        made[label] = fhir.create(body)
    return made


def search(fhir: Fhir, query: str, status: int = 200, **kw: Any) -> dict[str, Any]:
    r = fhir.get(query, **kw)
    assert r.status_code == status, (query, r.status_code, r.text)
    return r.json()  # type: ignore[no-any-return]


def hits(fhir: Fhir, made: dict[str, dict[str, Any]], query: str) -> set[str]:
    """The labels of a search's matches, checking that ``total`` agrees with them."""
    bundle = search(fhir, query)
    by_id = {f"{v['resourceType']}/{v['id']}": k for k, v in made.items()}
    found = [by_id.get(f"{e['resource']['resourceType']}/{e['resource']['id']}", "?")
             for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]
    assert len(found) == len(set(found)), found
    if "total" in bundle:
        assert bundle["total"] == len(found), (query, bundle["total"], found)
    return set(found)
