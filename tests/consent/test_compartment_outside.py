"""Resources in no patient's compartment are listed in ``compartment_outside`` with their
index rows (kept on update and delete, rebuilt by migration 0007), and the consent predicate
starts from them and from the permitted patients' compartments without changing what anyone
sees: directory data and records about a Group stay visible, others' records stay hidden."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, insert, inspect, select, text

from server.store.engine import migrate
from server.store.schema import compartment, compartment_outside, resource
from tests.conftest import Fhir, alembic_step
from tests.consent.scenario import CALLERS, RESOURCES

GROUP_REFERRAL = {"resourceType": "ServiceRequest", "id": "sr-group", "status": "active", "intent": "order",
                  "subject": {"reference": "Group/carers-group"}}


def _outside(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(select(resource.c.resource_type, resource.c.id).select_from(
            compartment_outside.join(resource, resource.c.pk == compartment_outside.c.resource_pk)))
        return {f"{t}/{i}": t for t, i in rows}


def _load_world(fhir: Fhir) -> None:
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
        for r in [*RESOURCES, GROUP_REFERRAL]]}
    assert fhir.post("", bundle).status_code == 200


def _as(app: Any, fhir: Fhir, name: str) -> Fhir:
    claims = dict(CALLERS[name])
    scope = claims.pop("scope")
    return fhir.as_(app.state.api.tokens.issue(f"client-{name}", scope, **claims))


def test_writes_keep_the_list_of_resources_outside_every_compartment(app, fhir):
    engine = app.state.api.repository.engine
    _load_world(fhir)
    outside = _outside(engine)
    assert "ServiceRequest/sr-group" in outside and "Organization/gp1" in outside
    assert not any(ref.startswith(("Patient/", "Condition/", "CarePlan/")) for ref in outside)
    moved = dict(GROUP_REFERRAL, subject={"reference": "Patient/a"})
    assert fhir.put("ServiceRequest/sr-group", moved).status_code == 200
    assert "ServiceRequest/sr-group" not in _outside(engine)
    assert fhir.put("ServiceRequest/sr-group", GROUP_REFERRAL).status_code == 200
    assert "ServiceRequest/sr-group" in _outside(engine)
    assert fhir.delete("ServiceRequest/sr-group").status_code in (200, 204)
    assert "ServiceRequest/sr-group" not in _outside(engine)


def test_callers_still_see_records_outside_the_compartments_and_only_shared_ones_within(app, fhir):
    _load_world(fhir)
    for name in ("gp", "other-gp", "carer", "social-care", "unwanted-relative"):
        api = _as(app, fhir, name)
        page = api.get("ServiceRequest?status=active&_count=100").json()
        found = {e["resource"]["id"] for e in page.get("entry", [])}
        assert "sr-group" in found, name
        assert api.get("ServiceRequest/sr-group").status_code == 200, name
        orgs = api.get("Organization?_summary=count").json()["total"]
        assert orgs == sum(1 for r in RESOURCES if r["resourceType"] == "Organization"), name
    def referrals(name: str) -> set[str]:
        return {e["resource"]["id"] for e in _as(app, fhir, name).get("ServiceRequest?_count=100").json()["entry"]}

    gp, custodian = referrals("gp"), referrals("custodian")
    assert gp < custodian  # the GP's share is a strict part of what the trust holds


def test_0007_lists_what_is_already_stored_and_downgrades(fresh_engine: Engine) -> None:
    alembic_step(fresh_engine, "upgrade", "0006")
    rows = [("Organization", "org", False), ("ServiceRequest", "sr-a", False), ("Practitioner", "gone", True),
            ("Patient", "a", False), ("ServiceRequest", "sr-group", False)]
    with fresh_engine.begin() as conn:
        pks = {}
        for rtype, rid, deleted in rows:
            pks[rid] = conn.execute(insert(resource).values(
                resource_type=rtype, id=rid, version_id=1, last_updated=1, deleted=deleted,
                content=None if deleted else b"{}").returning(resource.c.pk)).scalar_one()
        conn.execute(insert(compartment), [{"resource_pk": pks["sr-a"], "patient_id": "a"},
                                           {"resource_pk": pks["a"], "patient_id": "a"}])
    migrate(fresh_engine)
    assert _outside(fresh_engine) == {"Organization/org": "Organization", "ServiceRequest/sr-group": "ServiceRequest"}
    declared = {ix.name for ix in compartment_outside.indexes}
    assert {ix["name"] for ix in inspect(fresh_engine).get_indexes("compartment_outside")} == declared
    alembic_step(fresh_engine, "downgrade", "0006")
    assert "compartment_outside" not in inspect(fresh_engine).get_table_names()
    with fresh_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM resource")).scalar_one() == 5
