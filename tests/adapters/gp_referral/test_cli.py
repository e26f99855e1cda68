"""The commands: in-process ingest with exit codes, check (writes nothing), and POSTing
Bundles to a server (outbound HTTP mocked with respx)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import respx
from gp_samples import referral

from adapters.gp_referral.remote import ingest_remote
from carebridge.cli import main


def test_ingest_exit_code_and_lines(tmp_path: Path, capsys: Any) -> None:
    f = tmp_path / "day.hl7"
    f.write_bytes(b"\x0b" + referral("F1") + b"\x1c\r\n" + referral("F2", nhs="9434765918") + referral("F3"))
    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    assert main(["ingest", "gp-referral", str(f), "--database-url", url]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("accepted C82040-F1I12: 11 created")
    assert lines[1].startswith("rejected C82040-F2I12: PID-3: NHS number")
    assert lines[2].startswith("accepted C82040-F3I12")
    assert main(["ingest", "gp-referral", str(f), "--database-url", url]) == 1
    assert "accepted C82040-F1I12: 0 created" in capsys.readouterr().out


def test_check_reports_and_writes_nothing(tmp_path: Path, capsys: Any) -> None:
    f = tmp_path / "a.hl7"
    f.write_bytes(referral("K1") + referral("", control="K2"))
    assert main(["check", "gp-referral", str(f)]) == 1
    out = capsys.readouterr().out
    assert "ok C82040-K1I12: would write 2 Organization, 1 Practitioner, 1 Patient" in out
    assert "problems C82040-K2:" in out and "RF1-6: required field is missing" in out


@respx.mock
def test_remote_ingest_posts_transactions() -> None:
    posted: list[dict[str, Any]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        body = orjson.loads(request.content)
        posted.append(body)
        assert request.headers["Authorization"] == "Bearer T"
        return httpx.Response(200, json={"resourceType": "Bundle", "type": "transaction-response",
                                         "entry": [{"response": {"status": "201 Created"}}] * len(body["entry"])})

    respx.post("http://fhir.test/fhir").mock(side_effect=answer)
    respx.get(url__regex=r"http://fhir.test/fhir/Provenance/.*").mock(return_value=httpx.Response(404))
    respx.get("http://fhir.test/fhir/ServiceRequest").mock(
        return_value=httpx.Response(200, json={"resourceType": "Bundle", "type": "searchset", "total": 0}))
    outs = list(ingest_remote("http://fhir.test/fhir", [referral("H1"), referral("H2", trigger="I13")], token="T"))
    assert outs[0].accepted and outs[0].created == 11
    assert not outs[1].accepted and outs[1].problems[0].where == "RF1-6"
    assert len(posted) == 1 and posted[0]["type"] == "transaction"
