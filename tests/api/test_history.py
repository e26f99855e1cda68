"""History of an instance, a type and the whole system: newest first, request/response on
every entry, deletions without a resource, ``_since`` and paging."""

from __future__ import annotations

import time

import pytest

from tests.api import ukdata as uk
from tests.conftest import BASE


def _versions(bundle: dict) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    out = []
    for e in bundle["entry"]:
        ref = e["fullUrl"].removeprefix(f"{BASE}/fhir/")
        out.append((ref, e["response"]["etag"]))
    return out


@pytest.fixture
def lifecycle(fhir):
    """A Patient created, updated and deleted; another created after it."""
    created = fhir.create(uk.service_user(1))
    pid = created["id"]
    fhir.put(f"Patient/{pid}", dict(created, gender="male"))
    fhir.delete(f"Patient/{pid}")
    other = fhir.create(uk.service_user(2, family="Begum"))
    return pid, other["id"]


def test_instance_history_newest_first_with_request_and_response(fhir, lifecycle):
    pid, _ = lifecycle
    r = fhir.get(f"Patient/{pid}/_history")
    assert r.status_code == 200
    bundle = r.json()
    assert bundle["type"] == "history"
    entries = bundle["entry"]
    assert [e["response"]["etag"] for e in entries] == ['W/"3"', 'W/"2"', 'W/"1"']
    assert [e["request"]["method"] for e in entries] == ["DELETE", "PUT", "POST"]
    assert entries[0]["request"]["url"] == f"Patient/{pid}"
    assert entries[2]["request"]["url"] == "Patient"
    assert entries[2]["response"]["status"].startswith("201")
    assert entries[1]["response"]["status"].startswith("200")
    assert all("lastModified" in e["response"] for e in entries)
    assert all(e["fullUrl"] == f"{BASE}/fhir/Patient/{pid}" for e in entries)


def test_deleted_version_has_no_resource(fhir, lifecycle):
    pid, _ = lifecycle
    entries = fhir.get(f"Patient/{pid}/_history").json()["entry"]
    assert "resource" not in entries[0]
    assert entries[1]["resource"]["gender"] == "male"
    assert entries[1]["resource"]["meta"]["versionId"] == "2"
    assert entries[2]["resource"]["gender"] == "female"


def test_type_history_includes_every_version_of_the_type_only(fhir, lifecycle):
    pid, other = lifecycle
    fhir.create(uk.practitioner())
    bundle = fhir.get("Patient/_history").json()
    assert _versions(bundle) == [
        (f"Patient/{other}", 'W/"1"'), (f"Patient/{pid}", 'W/"3"'),
        (f"Patient/{pid}", 'W/"2"'), (f"Patient/{pid}", 'W/"1"'),
    ]


def test_system_history_spans_types(fhir, lifecycle):
    _pid, other = lifecycle
    prac = fhir.create(uk.practitioner())
    bundle = fhir.get("_history").json()
    assert bundle["type"] == "history"
    refs = [ref for ref, _ in _versions(bundle)]
    assert refs[0] == f"Practitioner/{prac['id']}"
    assert refs[1] == f"Patient/{other}"
    assert len(refs) == 5


def test_history_of_unknown_resource_is_404(fhir):
    assert fhir.get("Patient/nobody/_history").status_code == 404
    assert fhir.get("Medication/_history").status_code == 404


def test_history_since(fhir):
    old = fhir.create(uk.service_user(1))
    time.sleep(0.01)
    newer = fhir.create(uk.service_user(2))
    since = newer["meta"]["lastUpdated"]
    bundle = fhir.get(f"Patient/_history?_since={since}").json()
    assert [e["resource"]["id"] for e in bundle["entry"]] == [newer["id"]]
    everything = fhir.get("Patient/_history?_since=2000-01-01").json()
    assert {e["resource"]["id"] for e in everything["entry"]} == {old["id"], newer["id"]}
    assert fhir.get(f"Patient/{old['id']}/_history?_since={since}").json().get("entry", []) == []


def test_history_since_must_be_a_date(fhir):
    assert fhir.get("Patient/_history?_since=yesterday").status_code == 400


def test_history_count_and_next_link_walk_every_version_once(fhir):
    created = fhir.create(uk.service_user(1))
    pid = created["id"]
    for gender in ("male", "other", "unknown", "female", "male"):
        fhir.put(f"Patient/{pid}", dict(created, gender=gender))
    url = f"Patient/{pid}/_history?_count=2"
    seen, pages = [], 0
    while url:
        bundle = fhir.get(url).json()
        assert len(bundle["entry"]) <= 2
        seen += [e["response"]["etag"] for e in bundle["entry"]]
        url = uk.link(bundle, "next")
        pages += 1
    assert pages == 3
    assert seen == [f'W/"{v}"' for v in range(6, 0, -1)]


def test_history_paging_is_exact_across_a_transaction_written_in_the_same_instant(fhir):
    entries = [{"resource": uk.service_user(i, family=f"Family{i}"), "request": {"method": "POST", "url": "Patient"}}
               for i in range(1, 31)]
    r = fhir.post("", {"resourceType": "Bundle", "type": "transaction", "entry": entries})
    assert r.status_code == 200, r.text
    url, seen = "Patient/_history?_count=7", []
    while url:
        bundle = fhir.get(url).json()
        seen += [e["resource"]["id"] for e in bundle["entry"]]
        url = uk.link(bundle, "next")
    assert len(seen) == 30
    assert len(set(seen)) == 30


def test_history_paging_is_stable_while_new_versions_are_written(fhir):
    for i in range(1, 7):
        fhir.create(uk.service_user(i))
    first = fhir.get("Patient/_history?_count=3").json()
    page_one = [e["resource"]["id"] for e in first["entry"]]
    fhir.create(uk.service_user(20, family="Late"))
    second = fhir.get(uk.link(first, "next")).json()
    page_two = [e["resource"]["id"] for e in second["entry"]]
    assert not set(page_one) & set(page_two)
    assert len(page_one) + len(page_two) == 6


@pytest.mark.parametrize("count", ["abc", "-1"])
def test_history_bad_count_is_400(fhir, count):
    assert fhir.get(f"Patient/_history?_count={count}").status_code == 400
