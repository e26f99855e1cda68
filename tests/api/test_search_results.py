"""Result parameters over HTTP on SQLite and PostgreSQL: _sort, _count and signed paging
links, _summary, _elements, _total, _include/_revinclude (with :iterate), POST _search,
and lenient versus strict handling of unknown parameters."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from tests.api import ukdata as uk
from tests.api.searchkit import load, search
from tests.conftest import BASE

FHIR_BASE = f"{BASE}/fhir"
PEOPLE = [("Adams", "1970-01-01"), ("Baker", "1984-05-17"), ("Clarke", "1990-02-03"), ("Dhillon", None),
          ("Evans", "1984-05-17"), ("Faulkner", "2001-11-30"), ("Ghosh", "1955-07-07")]


@pytest.fixture(scope="module")
def data(module_fhir):
    items = []
    for n, (family, born) in enumerate(PEOPLE, start=1):
        res = uk.service_user(n, family=family)
        if born:
            res["birthDate"] = born
        else:
            del res["birthDate"]
        items.append((family, res))
    items += [
        ("gp", uk.gp_practice()),
        ("pr", uk.practitioner()),
        ("role", lambda m: uk.practitioner_role(m["pr"]["id"], m["gp"]["id"])),
        ("sr1", lambda m: uk.referral(m["Adams"]["id"], requester=uk.ref(m["role"]))),
        ("sr2", lambda m: uk.referral(m["Adams"]["id"], status="completed")),
        ("sr3", lambda m: uk.referral(m["Baker"]["id"], requester=uk.ref(m["pr"]))),
    ]
    return load(module_fhir, items)


def _families(bundle):
    return [e["resource"]["name"][0]["family"] for e in bundle["entry"] if e["search"]["mode"] == "match"]


def _walk(fhir, url):
    """Every page from ``url`` on, following next links (which must be absolute, under the base)."""
    pages = []
    while url:
        bundle = search(fhir, url)
        pages.append(bundle)
        url = uk.link(bundle, "next")
        if url:
            assert url.startswith(FHIR_BASE + "/"), url
    return pages


# -- _sort ---------------------------------------------------------------------------------------
def test_sort_ascending_and_descending(module_fhir, data):
    families = [f for f, _ in PEOPLE]
    assert _families(search(module_fhir, "Patient?_sort=family")) == families
    assert _families(search(module_fhir, "Patient?_sort=-family")) == families[::-1]


def test_sort_by_several_keys(module_fhir, data):
    got = _families(search(module_fhir, "Patient?_sort=birthdate,-family&birthdate:missing=false"))
    assert got == ["Ghosh", "Adams", "Evans", "Baker", "Clarke", "Faulkner"]


def test_sort_puts_missing_values_last_on_both_stores(module_fhir, data):
    assert _families(search(module_fhir, "Patient?_sort=birthdate,family"))[-1] == "Dhillon"
    assert _families(search(module_fhir, "Patient?_sort=-birthdate,family"))[-1] == "Dhillon"


def test_sort_by_id_and_last_updated(module_fhir, data):
    ids = sorted(data[f]["id"] for f, _ in PEOPLE)
    assert uk.ids(search(module_fhir, "Patient?_sort=_id")) == ids
    assert _families(search(module_fhir, "Patient?_sort=-_lastUpdated"))[0] == "Ghosh"


def test_sort_by_unknown_parameter_is_400(module_fhir, data):
    search(module_fhir, "Patient?_sort=shoe-size", status=400)


# -- _count and paging ---------------------------------------------------------------------------
@pytest.mark.parametrize("query", ["Patient?_count=2", "Patient?_count=3&_sort=-family"])
def test_paging_walks_every_match_once(module_fhir, data, query):
    pages = _walk(module_fhir, query)
    seen = [i for p in pages for i in uk.ids(p)]
    assert sorted(seen) == sorted(data[f]["id"] for f, _ in PEOPLE)
    assert len(pages) == (4 if "_count=2" in query else 3)
    assert all(len(uk.ids(p)) == int(query.split("_count=")[1][0]) for p in pages[:-1])
    assert "total" not in pages[0]  # not known without counting, and not asked for
    assert uk.link(pages[0], "self").startswith(FHIR_BASE + "/Patient?")
    if "_sort" in query:
        assert [x for p in pages for x in _families(p)] == sorted((f for f, _ in PEOPLE), reverse=True)


def test_tampered_paging_link_is_400(module_fhir, data):
    nxt = uk.link(search(module_fhir, "Patient?_count=2&family=a,b,c,d,e"), "next")
    token = parse_qs(urlsplit(nxt).query)["_page"][0]
    payload, _, mac = token.partition(".")
    import base64

    state = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).replace(b'"a"', b'"z"')
    forged = base64.urlsafe_b64encode(state).rstrip(b"=").decode() + "." + mac
    assert forged != token
    body = search(module_fhir, f"Patient?_page={forged}", status=400)
    assert body["resourceType"] == "OperationOutcome"
    search(module_fhir, f"Patient?_page={token[:-2]}", status=400)


def test_paging_link_ignores_parameters_added_beside_it(module_fhir, data):
    nxt = uk.link(search(module_fhir, "Patient?_count=5&_sort=family"), "next")
    bundle = search(module_fhir, nxt + "&family=Adams")
    assert _families(bundle) == ["Faulkner", "Ghosh"]


def test_count_zero_gives_the_total_only(module_fhir, data):
    bundle = search(module_fhir, "Patient?_count=0")
    assert bundle["total"] == 7
    assert not bundle.get("entry")


@pytest.mark.parametrize("value", ["-1", "two", "1.5"])
def test_bad_count_is_400(module_fhir, data, value):
    search(module_fhir, f"Patient?_count={value}", status=400)


# -- _total --------------------------------------------------------------------------------------
def test_total(module_fhir, data):
    assert search(module_fhir, "Patient?_count=2&_total=accurate")["total"] == 7
    assert "total" not in search(module_fhir, "Patient?_total=none")
    assert search(module_fhir, "Patient?_total=estimate")["total"] == 7  # one page: the count is known
    search(module_fhir, "Patient?_total=roughly", status=400)


# -- _summary and _elements ----------------------------------------------------------------------
def _subsetted(res):
    return any(t.get("code") == "SUBSETTED" for t in res.get("meta", {}).get("tag", []))


def test_summary_count(module_fhir, data):
    bundle = search(module_fhir, "Patient?_summary=count")
    assert bundle["total"] == 7
    assert "entry" not in bundle


def test_summary_data_drops_the_narrative(module_fhir, data):
    text = {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">Adams</div>'}
    assert module_fhir.put(f"Patient/{data['Adams']['id']}", dict(data["Adams"], text=text)).status_code == 200
    try:
        full = search(module_fhir, "Patient?family=Adams&_summary=false")["entry"][0]["resource"]
        assert full["text"] == text and not _subsetted(full)
        res = search(module_fhir, "Patient?family=Adams&_summary=data")["entry"][0]["resource"]
        assert "text" not in res and res["address"] and _subsetted(res)
        res = search(module_fhir, "Patient?family=Adams&_summary=text")["entry"][0]["resource"]
        assert res["text"] == text and "address" not in res and "name" not in res and _subsetted(res)
    finally:
        module_fhir.put(f"Patient/{data['Adams']['id']}", data["Adams"])


def test_elements(module_fhir, data):
    res = search(module_fhir, "Patient?family=Baker&_elements=identifier,birthDate")["entry"][0]["resource"]
    assert set(res) == {"resourceType", "id", "meta", "identifier", "birthDate"}
    assert _subsetted(res)


def test_bad_summary_is_400(module_fhir, data):
    search(module_fhir, "Patient?_summary=some", status=400)


# -- _include and _revinclude --------------------------------------------------------------------
def _modes(bundle):
    return {f"{e['resource']['resourceType']}/{e['resource']['id']}": e["search"]["mode"] for e in bundle["entry"]}


def test_include(module_fhir, data):
    adams = data["Adams"]["id"]
    bundle = search(module_fhir, f"ServiceRequest?subject={adams}&_include=ServiceRequest:subject")
    assert _modes(bundle) == {f"ServiceRequest/{data['sr1']['id']}": "match",
                              f"ServiceRequest/{data['sr2']['id']}": "match", f"Patient/{adams}": "include"}
    assert bundle["total"] == 2


def test_include_with_target_type(module_fhir, data):
    bundle = search(module_fhir, "ServiceRequest?_include=ServiceRequest:requester:Practitioner")
    assert {k for k, v in _modes(bundle).items() if v == "include"} == {f"Practitioner/{data['pr']['id']}"}


def test_revinclude(module_fhir, data):
    bundle = search(module_fhir, "Patient?family=Adams,Baker&_revinclude=ServiceRequest:subject")
    assert _modes(bundle) == {
        f"Patient/{data['Adams']['id']}": "match", f"Patient/{data['Baker']['id']}": "match",
        **{f"ServiceRequest/{data[k]['id']}": "include" for k in ("sr1", "sr2", "sr3")},
    }


@pytest.mark.parametrize("form", ["_include:iterate=PractitionerRole:organization",
                                  "_include=PractitionerRole:organization:iterate"])
def test_include_iterate(module_fhir, data, form):
    bundle = search(module_fhir, f"ServiceRequest?_id={data['sr1']['id']}&_include=ServiceRequest:requester&{form}")
    assert _modes(bundle) == {f"ServiceRequest/{data['sr1']['id']}": "match",
                              f"PractitionerRole/{data['role']['id']}": "include",
                              f"Organization/{data['gp']['id']}": "include"}


def test_include_without_iterate_stops_after_one_step(module_fhir, data):
    bundle = search(module_fhir, f"ServiceRequest?_id={data['sr1']['id']}&_include=ServiceRequest:requester"
                                 "&_include=PractitionerRole:organization")
    assert f"Organization/{data['gp']['id']}" not in _modes(bundle)


def test_include_of_a_non_reference_is_400(module_fhir, data):
    search(module_fhir, "ServiceRequest?_include=ServiceRequest:status", status=400)


# -- POST _search --------------------------------------------------------------------------------
def test_post_search_equals_get(module_fhir, data):
    query = "family=Adams,Baker&_sort=-family&_revinclude=ServiceRequest:subject"
    got = search(module_fhir, f"Patient?{query}")
    r = module_fhir.post("Patient/_search", content=query,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200, r.text
    posted = r.json()
    assert [e["fullUrl"] for e in posted["entry"]] == [e["fullUrl"] for e in got["entry"]]
    assert posted["total"] == got["total"] == 2
    assert uk.link(posted, "self") == uk.link(got, "self")


def test_post_search_with_json_body_is_415(module_fhir, data):
    r = module_fhir.post("Patient/_search", {"family": "Adams"})
    assert r.status_code == 415
    assert r.json()["resourceType"] == "OperationOutcome"


# -- unknown parameters --------------------------------------------------------------------------
def test_unknown_parameter_is_ignored_and_left_out_of_self(module_fhir, data):
    bundle = search(module_fhir, "Patient?family=Adams&shoe-size=9")
    assert uk.ids(bundle) == [data["Adams"]["id"]]
    assert uk.link(bundle, "self") == f"{FHIR_BASE}/Patient?family=Adams"
    outcome = [e for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    assert outcome[0]["resource"]["issue"][0]["severity"] == "warning"


def test_unknown_parameter_with_strict_handling_is_400(module_fhir, data):
    body = search(module_fhir, "Patient?family=Adams&shoe-size=9", status=400,
                  headers={"Prefer": "handling=strict"})
    assert "shoe-size" in body["issue"][0]["diagnostics"]
