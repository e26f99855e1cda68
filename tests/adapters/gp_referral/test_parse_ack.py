"""Real bytes through the reader, the mapping and the ACK builder: framing, line ends,
escapes, character sets, and AE/AR ACK content."""

from __future__ import annotations

import pytest
from gp_samples import referral

from adapters.gp_referral import hl7
from adapters.gp_referral.ack import ack
from adapters.gp_referral.convert import convert


def resources(raw: bytes) -> dict[str, dict]:
    c = convert(raw)
    assert c.ok, c.problems
    assert c.bundle is not None
    return {e["resource"]["resourceType"]: e["resource"] for e in c.bundle["entry"]}


@pytest.mark.parametrize("sep", ["\r", "\n", "\r\n"])
def test_line_ends_and_many_per_file(sep: str) -> None:
    data = referral("A", sep=sep) + referral("B", sep=sep)
    raws = list(hl7.split_stream([data[:50], data[50:]]))
    assert [convert(r).key for r in raws] == ["C82040-AI12", "C82040-BI12"]


def test_mllp_frames_and_batch_wrappers() -> None:
    data = b"FHS|^~\\&\rBHS|^~\\&\r" + b"\x0b" + referral("A") + b"\x1c\r" + b"\x0b" + referral("B") + b"\x1c\rBTS|2\r"
    assert len(list(hl7.split_stream([data]))) == 2


def test_side_by_side_mapping() -> None:
    """PID|1||9434765919^^^NHS^NH||Reid^Chloe^^^Ms^^L||19800214|F  ->  Patient; RF1 -> ServiceRequest."""
    got = resources(referral("S1", priority="S"))
    pat = got["Patient"]
    assert pat["identifier"][0]["system"] == "https://fhir.nhs.uk/Id/nhs-number"
    assert pat["identifier"][0]["value"] == "9434765919"
    assert pat["name"] == [{"family": "Reid", "given": ["Chloe"], "prefix": ["Ms"], "use": "official"}]
    assert pat["birthDate"] == "1980-02-14" and pat["gender"] == "female"
    sr = got["ServiceRequest"]
    assert sr["priority"] == "stat" and sr["status"] == "active" and sr["intent"] == "order"
    assert {"system": "https://fhir.nhs.uk/Id/UBRN", "value": "UBRNS1"} in sr["identifier"]
    assert sr["note"] == [{"text": "Lives with partner & family\nSafety plan | agreed"}]
    assert sr["extension"][0]["valueDateTime"] == "2024-03-11T13:30:00+00:00"
    assert got["Condition"]["code"]["coding"][0] == {"system": "http://hl7.org/fhir/sid/icd-10", "code": "F32.2",
                                                      "display": "Severe depressive episode"}
    assert got["Observation"]["valueQuantity"]["value"] == 21
    assert got["RelatedPerson"]["relationship"][0]["coding"][0]["code"] == "SPO"
    assert got["Provenance"]["policy"] == ["https://fhir.carebridge.example/mappings/gp-referral/v1"]


def test_latin1_per_msh18() -> None:
    raw = referral("L1", charset="8859/1", reason="Père: dépression")
    assert "é" in resources(raw)["ServiceRequest"]["reasonCode"][0]["text"]


@pytest.mark.parametrize(("raw", "where", "code"), [
    (referral("E1", nhs="9434765918"), "PID-3", "102"),
    (referral("", control="X1"), "RF1-6", "101"),
    (referral("E3", when="20240231093000"), "MSH-7", "102"),
])
def test_content_errors_answer_ae(raw: bytes, where: str, code: str) -> None:
    c = convert(raw)
    assert not c.ok and c.problems[0].where == where
    text = ack(c.message, c.problems).decode()
    segs = text.split("\r")
    assert segs[1].startswith(f"MSA|AE|{c.control_id}")
    err = segs[2].split("|")
    assert err[0] == "ERR" and err[2].startswith(where.split("-")[0] + "^1^" + where.split("-")[1])
    assert err[3].startswith(code) and err[4] == "E"


@pytest.mark.parametrize(("raw", "code"), [
    (referral("V1", version="2.7"), "203"),
    (referral("T1").replace(b"REF^I12", b"ADT^A01"), "200"),
    (b"hello, this is not HL7\r", "100"),
])
def test_unprocessable_answers_ar(raw: bytes, code: str) -> None:
    c = convert(raw)
    segs = ack(c.message, c.problems).decode().split("\r")
    assert segs[1].split("|")[1] == "AR"
    assert segs[2].split("|")[3].startswith(code)


def test_aa_echoes_control_id() -> None:
    c = convert(referral("OK1", control="CTRL-77"))
    assert c.ok
    assert ack(c.message, []).decode().split("\r")[1] == "MSA|AA|CTRL-77"


@pytest.mark.parametrize("version", ["2.3", "2.3.1", "2.4", "2.5", "2.5.1"])
def test_versions_accepted(version: str) -> None:
    assert convert(referral("V", version=version)).ok


def test_unknown_segments_kept_in_raw_message() -> None:
    raw = referral("Z1").replace(b"RF1|", b"EVN|I12|20240311093000\rRF1|")
    got = resources(raw)
    import base64

    kept = base64.b64decode(got["DocumentReference"]["content"][0]["attachment"]["data"])
    assert kept == raw and b"ZXT|1|local data" in kept and b"EVN|I12" in kept
