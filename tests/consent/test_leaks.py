"""The leak checklist (reference/consent-and-access.md): every channel behaves as if the
resources a caller may not see did not exist. Each test compares a caller who may see a
resource with one who may not, so that a channel ignoring consent fails the test."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.consent.scenario import CALLERS, COMPARTMENT, EXPECTED


def _refs(bundle: dict, mode: str | None = "match") -> set[str]:
    return {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle.get("entry", [])
            if "resource" in e and (mode is None or e.get("search", {}).get("mode") == mode)}


def _expected(caller: str, rtype: str) -> set[str]:
    return {ref for ref in EXPECTED[caller] if ref.startswith(f"{rtype}/")}


# 1. _include, _revinclude and :iterate
def test_include_never_brings_in_a_hidden_target(as_caller):
    carer = as_caller("carer").get("CarePlan?_include=CarePlan:subject").json()
    assert _refs(carer) == {"CarePlan/cp-a"}
    assert _refs(carer, "include") == set()  # Patient/a is not shared with the carer
    gp = as_caller("gp").get("CarePlan?_include=CarePlan:subject").json()
    assert _refs(gp, "include") == {"Patient/a"}


def test_revinclude_and_iterate_leave_out_hidden_sources(as_caller):
    gp = as_caller("gp").get("Patient?_revinclude=Condition:subject&_revinclude:iterate=Observation:subject").json()
    assert _refs(gp) == {"Patient/a"}
    assert _refs(gp, "include") == {"Condition/cond-a", "Observation/obs-a-carer-note", "Observation/obs-a-social"}
    custodian = as_caller("custodian").get("Patient?_id=a&_revinclude=Condition:subject").json()
    assert "Condition/cond-a-restricted" in _refs(custodian, "include")


# 2. Bundle.total, _summary=count, _total=accurate
@pytest.mark.parametrize("caller", sorted(CALLERS))
@pytest.mark.parametrize("rtype", ["Patient", "Condition", "Observation", "ServiceRequest", "Consent"])
def test_totals_count_only_what_is_shared(as_caller, caller, rtype):
    api = as_caller(caller)
    want = len(_expected(caller, rtype))
    assert api.get(f"{rtype}?_total=accurate").json()["total"] == want
    counted = api.get(f"{rtype}?_summary=count").json()
    assert counted["total"] == want and "entry" not in counted


# 3. paging: every page filtered, no empty trailing pages, links re-checked for the caller using them
@pytest.mark.parametrize("caller", ["gp", "social-care", "custodian", "service-user"])
def test_paging_walks_only_shared_resources(as_caller, caller):
    api = as_caller(caller)
    seen: list[str] = []
    bundle = api.get("Observation?_count=1").json()
    while True:
        page = _refs(bundle)
        nxt = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        if nxt:
            assert page, "a page before the last one is empty"
        seen += sorted(page)
        if not nxt:
            break
        parts = urlsplit(nxt[0])
        bundle = api.get(f"{parts.path.removeprefix('/fhir/')}?{parts.query}").json()
    assert sorted(seen) == sorted(_expected(caller, "Observation"))


def test_a_paging_link_used_by_another_caller_shows_only_their_own_view(as_caller):
    first = as_caller("custodian").get("Patient?_count=1").json()
    nxt = next(link["url"] for link in first["link"] if link["relation"] == "next")
    parts = urlsplit(nxt)
    other = as_caller("other-gp").get(f"{parts.path.removeprefix('/fhir/')}?{parts.query}")
    assert other.status_code in (200, 400)
    if other.status_code == 200:
        assert _refs(other.json()) == set()


# 4. 403 versus 404: a type the scopes exclude answers 403 whether or not the id exists
def test_scope_refusal_does_not_depend_on_existence(as_caller, module_app, world):
    token = module_app.state.api.tokens.issue("narrow", "user/Observation.rs", organization="C82001",
                                              fhir_user="Practitioner/gp-patel")
    api = world.as_(token)
    assert api.get("Condition/cond-a").status_code == api.get("Condition/nothing").status_code == 403


# 5. _has
def test_has_is_evaluated_over_visible_resources_only(as_caller):
    query = "Patient?_has:Condition:subject:code=69322001"  # only the restricted Condition has this code
    assert _refs(as_caller("custodian").get(query).json()) == {"Patient/a"}
    assert _refs(as_caller("gp").get(query).json()) == set()


# 6. chained parameters
def test_chains_join_only_visible_targets(as_caller):
    query = "CarePlan?subject.family=Able"
    assert _refs(as_caller("gp").get(query).json()) == {"CarePlan/cp-a"}
    assert _refs(as_caller("carer").get(query).json()) == set()  # the Patient is not shared with the carer
    assert _refs(as_caller("carer").get("CarePlan?subject=Patient/a").json()) == {"CarePlan/cp-a"}


# 7 and 14. history and vread
@pytest.mark.parametrize("caller", ["gp", "carer", "social-care", "objected-clinician", "unwanted-relative"])
def test_history_lists_only_shared_resources(as_caller, caller):
    api = as_caller(caller)
    system = api.get("_history?_count=500").json()
    assert {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in system["entry"]} == EXPECTED[caller]
    typed = api.get("Condition/_history").json()
    assert {f"Condition/{e['resource']['id']}" for e in typed["entry"]} == _expected(caller, "Condition")
    for ref in ("Condition/cond-a-restricted", "Patient/c"):
        if ref not in EXPECTED[caller]:
            assert api.get(f"{ref}/_history").status_code == 404
            assert api.get(f"{ref}/_history/1").status_code == 404


# 8. $everything
@pytest.mark.parametrize("caller", ["gp", "custodian", "service-user", "carer", "social-care"])
def test_everything_returns_only_the_shared_part_of_the_compartment(as_caller, caller):
    api = as_caller(caller)
    r = api.get("Patient/a/$everything?_count=100")
    if "Patient/a" not in EXPECTED[caller]:
        assert r.status_code == 404
        return
    assert _refs(r.json()) == EXPECTED[caller] & COMPARTMENT["a"]


# 9. sort
def test_sort_orders_only_visible_rows(as_caller):
    got = as_caller("gp").get("Condition?_sort=-code").json()
    assert [e["resource"]["id"] for e in got["entry"]] == ["cond-a"]


# 11. error messages never name hidden resources
def test_an_include_of_a_hidden_target_leaves_no_entry_or_warning(as_caller):
    bundle = as_caller("carer").get("CarePlan?_include=CarePlan:subject").json()
    assert [e["search"]["mode"] for e in bundle["entry"]] == ["match"]


# 15. _summary and _elements give no way around the decision
def test_summary_and_elements_do_not_widen_results(as_caller):
    api = as_caller("gp")
    assert _refs(api.get("Condition?_summary=true").json()) == {"Condition/cond-a"}
    assert _refs(api.get("Condition?_elements=code").json()) == {"Condition/cond-a"}


def test_break_glass_opens_the_record_and_says_so(as_caller):
    r = as_caller("break-glass").get("Condition/cond-a-restricted")
    assert r.status_code == 200
    assert "break-glass" in r.headers["x-break-glass"]
    assert "x-break-glass" not in as_caller("custodian").get("Condition/cond-a").headers
