"""``_lastUpdated`` searches page in (lastUpdated, key) order: every match once, in that order.

Updating a resource moves it to the end of that order; paging through signed links must
still give each matching resource exactly once.
"""

from urllib.parse import quote

from tests.conftest import patient


def _page_through(fhir, url):
    seen, pages = [], 0
    while url and pages < 20:
        r = fhir.get(url)
        assert r.status_code == 200, r.text
        bundle = r.json()
        seen += [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]
        url = next((link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None)
        pages += 1
    return seen


def test_last_updated_pages_in_update_order(fhir):
    made = [fhir.create(patient(None, family=f"Paged{i}")) for i in range(5)]
    since = made[0]["meta"]["lastUpdated"]
    # the first one changes last: it must now come last
    first = dict(made[0], gender="female")
    r = fhir.put(f"Patient/{first['id']}", json=first)
    assert r.status_code == 200
    seen = _page_through(fhir, f"Patient?_lastUpdated=ge{quote(since)}&_count=2")
    assert [p["id"] for p in seen] == [p["id"] for p in made[1:]] + [made[0]["id"]]
    stamps = [p["meta"]["lastUpdated"] for p in seen]
    assert stamps == sorted(stamps)


def test_last_updated_with_another_clause_keeps_both(fhir):
    made = [fhir.create(patient(None, family="Keep" if i % 2 else "Drop")) for i in range(6)]
    since = made[0]["meta"]["lastUpdated"]
    seen = _page_through(fhir, f"Patient?_lastUpdated=ge{quote(since)}&family=Keep&_count=1")
    assert [p["id"] for p in seen] == [p["id"] for i, p in enumerate(made) if i % 2]
