"""Referrals landed in real stores (SQLite file and PostgreSQL): exactly once, updates,
cancels, rejections that leave nothing behind, and the triage worklist through the API."""

from __future__ import annotations

from typing import Any

import pytest
from gp_samples import SR, referral

from adapters.gp_referral.ingest import ingest


def run(repo: Any, *raws: bytes) -> list[Any]:
    return [o for _, o in ingest(repo, list(raws))]


def test_same_message_twice_changes_nothing(repo: Any, fhir: Any) -> None:
    msg = referral("R1")
    first = run(repo, msg)
    assert first[0].accepted and first[0].created == 11
    again = run(repo, msg, msg)
    assert [o.created for o in again] == [0, 0]
    r = fhir.get(f"ServiceRequest?identifier={SR}|R1")
    sr = r.json()["entry"][0]["resource"]
    assert sr["meta"]["versionId"] == "1"


def test_modify_cancel_and_status(repo: Any, fhir: Any) -> None:
    assert run(repo, referral("R2"))[0].accepted
    assert run(repo, referral("R2", trigger="I13", reason="Now also not sleeping"))[0].accepted
    sr = fhir.get(f"ServiceRequest?identifier={SR}|R2").json()["entry"][0]["resource"]
    assert sr["reasonCode"][0]["text"] == "Now also not sleeping" and sr["meta"]["versionId"] == "2"
    assert run(repo, referral("R2", trigger="I14"))[0].accepted
    sr = fhir.get(f"ServiceRequest?identifier={SR}|R2").json()["entry"][0]["resource"]
    assert sr["status"] == "revoked"


@pytest.mark.parametrize("trigger", ["I13", "I14", "I15"])
def test_unknown_referral_rejected(repo: Any, fhir: Any, trigger: str) -> None:
    out = run(repo, referral("NOPE", trigger=trigger))[0]
    assert not out.accepted
    assert "no referral matches" in str(out.problems[0]) and out.problems[0].where == "RF1-6"
    assert fhir.get("Patient").json().get("total", len(fhir.get("Patient").json().get("entry", []))) == 0


def test_bad_message_lands_nothing_rest_goes_on(repo: Any, fhir: Any) -> None:
    outs = run(repo, referral("R3", nhs="9434765918"), referral("R4"))
    assert not outs[0].accepted and outs[0].problems[0].where == "PID-3"
    assert outs[1].accepted
    ids = [e["resource"]["identifier"][0]["value"] for e in fhir.get("ServiceRequest").json()["entry"]]
    assert ids == ["R4"]


def test_triage_due_searchable_and_sortable(repo: Any, fhir: Any) -> None:
    run(repo, referral("U1", priority="S", when="20240301090000"), referral("RT", priority="R", when="20240328100000"))
    r = fhir.get("ServiceRequest?_sort=triage-due")
    got = [(e["resource"]["identifier"][0]["value"], e["resource"]["extension"][0]["valueDateTime"])
           for e in r.json()["entry"]]
    # urgent: +4 h; routine on Thursday 28 March 2024: Good Friday and Easter Monday skipped
    assert got == [("U1", "2024-03-01T13:00:00+00:00"), ("RT", "2024-04-02T17:00:00+01:00")]
    r = fhir.get("ServiceRequest?triage-due=lt2024-03-02")
    assert [e["resource"]["identifier"][0]["value"] for e in r.json()["entry"]] == ["U1"]
    r = fhir.get("ServiceRequest?_sort=-triage-due")
    assert r.json()["entry"][0]["resource"]["identifier"][0]["value"] == "RT"


def test_status_update_i15(repo: Any, fhir: Any) -> None:
    assert run(repo, referral("R5"))[0].accepted
    i15 = referral("R5", trigger="I15").replace(b"RF1|A^Accepted", b"RF1|R^Rejected")
    assert run(repo, i15)[0].accepted
    sr = fhir.get(f"ServiceRequest?identifier={SR}|R5").json()["entry"][0]["resource"]
    assert sr["status"] == "revoked"
