"""A read by id answers from the driver-level lookup; visibility must still hold on it.

A caller whose scopes narrow what they see gets 404 for a resource outside them, exactly
as for one that does not exist, and 410 only for a deleted resource they could see.
"""

from tests.conftest import patient


def test_filtered_scope_hides_a_resource_as_if_missing(fhir, token_for):
    female = fhir.create(patient("9990000018", gender="female"))
    male = fhir.create(patient("9990000026", gender="male"))
    narrowed = fhir.as_(token_for("system/Patient.rs?gender=female"))
    assert narrowed.get(f"Patient/{female['id']}").status_code == 200
    hidden = narrowed.get(f"Patient/{male['id']}")
    missing = narrowed.get("Patient/no-such-patient")
    assert hidden.status_code == missing.status_code == 404
    # the same answer, word for word, but for the id the caller asked about
    assert hidden.text.replace(male["id"], "no-such-patient") == missing.text


def test_patient_scope_sees_only_its_compartment(fhir, token_for):
    own = fhir.create(patient("9990000018"))
    other = fhir.create(patient("9990000026"))
    scoped = fhir.as_(token_for("patient/Patient.rs", patient=own["id"]))
    assert scoped.get(f"Patient/{own['id']}").status_code == 200
    assert scoped.get(f"Patient/{other['id']}").status_code == 404


def test_deleted_resource_is_gone_only_for_a_caller_who_could_see_it(fhir, token_for):
    female = fhir.create(patient("9990000018", gender="female"))
    male = fhir.create(patient("9990000026", gender="male"))
    assert fhir.delete(f"Patient/{female['id']}").status_code in (200, 204)
    assert fhir.delete(f"Patient/{male['id']}").status_code in (200, 204)
    assert fhir.get(f"Patient/{female['id']}").status_code == 410
    narrowed = fhir.as_(token_for("system/Patient.rs?gender=female"))
    # once deleted, nothing shows that the male Patient was ever there
    assert narrowed.get(f"Patient/{male['id']}").status_code == 404


def test_no_read_scope_is_403(fhir, token_for):
    created = fhir.create(patient("9990000018"))
    r = fhir.as_(token_for("system/Observation.rs")).get(f"Patient/{created['id']}")
    assert r.status_code == 403
