"""The shortest path through the product: metadata, then create, read and search a Patient."""

from tests.conftest import NHS, patient


def test_metadata_needs_no_token(fhir):
    r = fhir.as_(None).get("metadata")
    assert r.status_code == 200
    body = r.json()
    assert body["resourceType"] == "CapabilityStatement"
    assert body["fhirVersion"] == "4.0.1"


def test_create_read_search(fhir):
    created = fhir.create(patient("9990000018"))
    r = fhir.get(f"Patient/{created['id']}")
    assert r.status_code == 200
    assert r.headers["etag"] == 'W/"1"'
    r = fhir.get(f"Patient?identifier={NHS}|9990000018")
    bundle = r.json()
    assert bundle["total"] == 1
    assert bundle["entry"][0]["resource"]["id"] == created["id"]
