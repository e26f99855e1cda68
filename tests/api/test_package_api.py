"""The carebridge package served by the product: the FHIR API (read-only) and the /profiles pages."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import BASE

CB = "https://fhir.carebridge.example"


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """The package is not in the store: one store kind is enough here."""
    return f"sqlite:///{tmp_path / 'store.sqlite'}"


def test_read_structure_definition(fhir: Any) -> None:
    r = fhir.get("StructureDefinition/cap-referral")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["url"] == f"{CB}/StructureDefinition/cap-referral"
    assert body["baseDefinition"] == "https://fhir.hl7.org.uk/StructureDefinition/UKCore-ServiceRequest"


@pytest.mark.parametrize(("rtype", "id"), [("ValueSet", "cap-stream"), ("CodeSystem", "cap-stream"),
                                           ("SearchParameter", "ServiceRequest-stream"),
                                           ("StructureDefinition", "triage-due")])
def test_read_each_conformance_type(fhir: Any, rtype: str, id: str) -> None:
    r = fhir.get(f"{rtype}/{id}")
    assert r.status_code == 200, r.text
    assert r.json()["resourceType"] == rtype and r.json()["id"] == id


def test_unknown_id_is_404(fhir: Any) -> None:
    r = fhir.get("StructureDefinition/no-such-profile")
    assert r.status_code == 404
    assert r.json()["resourceType"] == "OperationOutcome"


def test_search_by_url(fhir: Any) -> None:
    r = fhir.get("CodeSystem", params={"url": f"{CB}/CodeSystem/triage-outcome"})
    assert r.status_code == 200
    bundle = r.json()
    assert bundle["type"] == "searchset" and bundle["total"] == 1
    assert bundle["entry"][0]["resource"]["id"] == "triage-outcome"
    assert fhir.get("CodeSystem", params={"url": f"{CB}/CodeSystem/nothing"}).json()["total"] == 0
    versioned = fhir.get("CodeSystem", params={"url": f"{CB}/CodeSystem/triage-outcome|0.1.0"}).json()
    assert versioned["total"] == 1


def test_search_all_of_a_type_lists_the_package(fhir: Any) -> None:
    bundle = fhir.get("StructureDefinition").json()
    ids = {e["resource"]["id"] for e in bundle["entry"]}
    assert {"carebridge-patient", "cap-referral", "single-integrated-care-plan", "carebridge-consent",
            "carer", "dialog-response", "triage-due"} <= ids
    assert bundle["total"] == len(ids)


def test_unknown_search_parameter_is_refused(fhir: Any) -> None:
    assert fhir.get("ValueSet", params={"publisher": "x"}).status_code == 400


def test_token_required(fhir: Any) -> None:
    anonymous = fhir.as_(None)
    assert anonymous.get("StructureDefinition/cap-referral").status_code == 401
    assert anonymous.get("ValueSet").status_code == 401


def test_writes_are_refused(fhir: Any) -> None:
    vs = fhir.get("ValueSet/cap-stream").json()
    assert fhir.put("ValueSet/cap-stream", vs).status_code == 405
    assert fhir.post("ValueSet", vs).status_code == 405
    assert fhir.delete("ValueSet/cap-stream").status_code == 405
    assert fhir.get("ValueSet/cap-stream").json() == vs


def test_capability_statement_lists_conformance_types(fhir: Any) -> None:
    cs = fhir.as_(None).get("metadata").json()
    by_type = {r["type"]: r for r in cs["rest"][0]["resource"]}
    for rtype in ("StructureDefinition", "ValueSet", "CodeSystem", "SearchParameter"):
        assert [i["code"] for i in by_type[rtype]["interaction"]] == ["read", "search-type"]
        assert "url" in {p["name"] for p in by_type[rtype]["searchParam"]}


def test_stream_search_answers_on_service_requests(fhir: Any) -> None:
    pat = fhir.create({"resourceType": "Patient", "name": [{"family": "Stream"}]})
    for code in ("camhs", "amh"):
        fhir.create({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                     "subject": {"reference": f"Patient/{pat['id']}"},
                     "category": [{"coding": [{"system": f"{CB}/CodeSystem/cap-stream", "code": code}]}]})
    found = fhir.get("ServiceRequest", params={"stream": f"{CB}/CodeSystem/cap-stream|camhs"}).json()
    assert [e["resource"]["category"][0]["coding"][0]["code"] for e in found.get("entry", [])] == ["camhs"]


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.links += [v for k, v in attrs if k == "href" and v]
        if tag == "script":
            self.scripts += 1


def test_profiles_page_lists_every_resource_and_each_page_renders(app: Any) -> None:
    from server.definitions.package import default_package

    with TestClient(app, base_url=BASE) as client:
        r = client.get("/profiles")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        parser = Links()
        parser.feed(r.text)
        assert parser.scripts == 0
        pages = [link for link in parser.links if link.startswith("/profiles/")]
        assert sorted(pages) == sorted(f"/profiles/{f.page}" for f in default_package().files)
        for page in pages:
            detail = client.get(page)
            assert detail.status_code == 200, page
            assert "<h1>" in detail.text
        patient = client.get("/profiles/StructureDefinition-carebridge-patient").text
        assert "cb-nhs-1" in patient and "Patient.identifier:nhsNumber" in patient
        dialog = client.get("/profiles/Questionnaire-dialog").text
        assert len(re.findall(r"<td>dialog-\d+</td>", dialog)) == 11
        assert client.get("/profiles/nothing-here").status_code == 404
