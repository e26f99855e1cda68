"""Many referrals per commit, on real stores (SQLite file and PostgreSQL), in one process and
with worker processes: each message still lands whole or not at all, messages of one batch
see each other's writes, nothing is reported before its commit, and a re-ingest writes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from gp_samples import SR, referral

from adapters.common.landing import Landable, Planner, land
from adapters.gp_referral.ack import ack
from adapters.gp_referral.convert import convert
from adapters.gp_referral.ingest import ingest

NHS = "https://fhir.nhs.uk/Id/nhs-number"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"


def run(repo: Any, raws: list[bytes], *, workers: int = 0, batch_size: int = 200) -> list[Any]:
    return [o for _, o in ingest(repo, raws, workers=workers, batch_size=batch_size)]


def entries(fhir: Any, query: str) -> list[dict[str, Any]]:
    body = fhir.get(query).json()
    return [e["resource"] for e in body.get("entry", [])]


@pytest.fixture(params=[0, 1], ids=["in-process", "worker"])
def workers(request: pytest.FixtureRequest) -> int:
    return int(request.param)


def test_bad_message_mid_batch_lands_nothing_and_is_located(repo: Any, fhir: Any, workers: int) -> None:
    raws = [referral("B1", nhs="9434765919"), referral("B2", nhs="9434765918"), referral("B3", nhs="9434765870")]
    converted = [c for c, _ in ingest(repo, raws, workers=workers)]
    outs = [o for _, o in ingest(repo, raws, workers=workers)]  # again: the same answers, nothing new
    assert [o.accepted for o in outs] == [True, False, True]
    assert [o.created for o in outs] == [0, 0, 0]
    assert outs[1].problems[0].where == "PID-3"
    reply = ack(converted[1].message, outs[1].problems).decode().split("\r")
    assert reply[1].startswith("MSA|AE|B2I12") and reply[2].startswith("ERR||PID^1^3|")
    assert sorted(sr["identifier"][0]["value"] for sr in entries(fhir, "ServiceRequest")) == ["B1", "B3"]
    assert entries(fhir, f"Patient?identifier={NHS}|9434765918") == []


def test_store_failure_mid_batch_rolls_back_that_message_alone(repo: Any, fhir: Any) -> None:
    """The middle message fails in the store after most of its resources were written in
    its savepoint (its last entry, the Provenance, is refused): all of it goes, the
    messages before and after it in the same commit stay."""
    planner = Planner(repo)
    items: list[Landable] = []
    for ref, nhs in (("S1", "9434765919"), ("S2", "9434765918"), ("S3", "9434765870")):
        c = convert(referral(ref, nhs=nhs if ref != "S2" else "9434765919"))
        assert c.ok
        item = c.landable()
        if ref == "S2":
            item.entries[-1]["resource"] = dict(item.entries[-1]["resource"], recorded="not a date")
        items.append(planner.plan(item))
    outs = land(repo, items)
    assert [o.accepted for o in outs] == [True, False, True]
    assert "Bundle.entry[" in outs[1].problems[0].reason
    assert sorted(sr["identifier"][0]["value"] for sr in entries(fhir, "ServiceRequest")) == ["S1", "S3"]
    docs = entries(fhir, "DocumentReference")
    assert sorted(d["identifier"][0]["value"] for d in docs) == ["C82040-S1I12", "C82040-S3I12"]
    # the patient S2 shared with S1 is S1's version, untouched by the rolled-back message
    patients = entries(fhir, f"Patient?identifier={NHS}|9434765919")
    assert len(patients) == 1 and patients[0]["meta"]["versionId"] == "1"


def test_same_patient_twice_in_one_batch(repo: Any, fhir: Any, workers: int) -> None:
    outs = run(repo, [referral("P1"), referral("P2", reason="Anxiety"), referral("P3", nhs="9434765870")],
               workers=workers)
    assert all(o.accepted for o in outs)
    assert outs[1].created < outs[0].created  # patient, practice, GP... found, not made again
    patients = entries(fhir, f"Patient?identifier={NHS}|9434765919")
    assert len(patients) == 1 and patients[0]["meta"]["versionId"] == "1"
    refs = {sr["identifier"][0]["value"]: sr["subject"]["reference"]
            for sr in entries(fhir, "ServiceRequest?_count=10")}
    assert refs["P1"] == refs["P2"] == f"Patient/{patients[0]['id']}" != refs["P3"]
    assert len(entries(fhir, f"Organization?identifier={ODS}|C82040")) == 1


def test_i12_then_i13_in_one_batch(repo: Any, fhir: Any, workers: int) -> None:
    outs = run(repo, [referral("M1"), referral("M1", trigger="I13", reason="Now also not sleeping"),
                      referral("M1", trigger="I14", reason="Now also not sleeping")], workers=workers)
    assert [o.accepted for o in outs] == [True, True, True]
    [sr] = entries(fhir, f"ServiceRequest?identifier={SR}|M1")
    assert sr["reasonCode"][0]["text"] == "Now also not sleeping"
    assert sr["status"] == "revoked" and sr["meta"]["versionId"] == "3"


def test_modify_before_its_referral_in_one_batch_is_refused(repo: Any, fhir: Any) -> None:
    outs = run(repo, [referral("M2", trigger="I13"), referral("M2")])
    assert not outs[0].accepted and outs[0].problems[0].where == "RF1-6"
    assert outs[1].accepted
    [sr] = entries(fhir, f"ServiceRequest?identifier={SR}|M2")
    assert sr["meta"]["versionId"] == "1"


def test_reingest_creates_nothing(repo: Any, fhir: Any, workers: int) -> None:
    raws = [referral(f"R{i}", nhs=nhs) for i, nhs in enumerate(["9434765919", "9434765918", "9434765870"] * 2)]
    raws[4] = referral("R4", nhs="9434765919", reason="Second referral")
    first = run(repo, raws, workers=workers, batch_size=4)
    assert [o.accepted for o in first] == [True, False, True, True, True, True]
    versions = {r["id"]: r["meta"]["versionId"] for r in entries(fhir, "ServiceRequest?_count=50")}
    again = run(repo, raws, workers=workers, batch_size=4)
    assert [o.accepted for o in again] == [o.accepted for o in first]
    assert [o.created for o in again] == [0] * 6
    assert {r["id"]: r["meta"]["versionId"] for r in entries(fhir, "ServiceRequest?_count=50")} == versions


def test_existing_practice_with_its_own_id_is_found(repo: Any, fhir: Any, workers: int) -> None:
    """The practice is in the store already, under an id the plan cannot guess: the
    referral refers to it, and nothing is duplicated."""
    practice = fhir.create({"resourceType": "Organization", "name": "Highfields Medical Centre",
                            "identifier": [{"system": ODS, "value": "C82040"}]})
    outs = run(repo, [referral("E1"), referral("E2", nhs="9434765870")], workers=workers)
    assert all(o.accepted for o in outs)
    [org] = entries(fhir, f"Organization?identifier={ODS}|C82040")
    assert org["id"] == practice["id"]
    for p in entries(fhir, "Patient"):
        assert {"reference": f"Organization/{practice['id']}"} in p["generalPractitioner"]


def test_nothing_reported_before_its_batch_commits(repo: Any, fhir: Any) -> None:
    """The input fails part-way through a batch (a crash, as far as that batch is
    concerned): every message reported was committed, no unreported one was."""
    def feed() -> Iterator[bytes]:
        for i in range(5):
            yield referral(f"C{i}", nhs="9434765919" if i % 2 else "9434765870")
        raise OSError("the file went away")

    reported = []
    with pytest.raises(OSError):
        for _, outcome in ingest(repo, feed(), batch_size=3):
            reported.append(outcome.key)
            # reported means committed: another connection sees it already
            prov = fhir.get(f"DocumentReference?identifier=https://fhir.carebridge.example/Id/source-message|"
                            f"{outcome.key}").json()
            assert len(prov.get("entry", [])) == 1
    assert reported == ["C82040-C0I12", "C82040-C1I12", "C82040-C2I12"]
    landed = sorted(sr["identifier"][0]["value"] for sr in entries(fhir, "ServiceRequest"))
    assert landed == ["C0", "C1", "C2"]
