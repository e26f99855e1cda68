"""Nothing a client sends makes the store fail with anything but a FHIR error.

Generated searches (every parameter of the main types, with modifiers, prefixes and values
good and bad) and generated writes (HL7's examples and the product's with one value replaced
by any JSON) must either answer or raise the FhirError that becomes a 4xx OperationOutcome.
Transactions and batches with one value of an entry replaced go the same way. Found this
way: a search bound or a birth date in the year 9999, and entries whose fullUrl, resource,
ifNoneExist or ifMatch had the wrong JSON type, answered 500."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carebridge.config import Settings
from server.api.app import build_state
from server.consent.context import AccessContext
from server.definitions.search_parameters import default_registry
from server.fhir.errors import FhirError
from server.store.repository import Repository
from server.store.unit import prepare
from tests.conftest import patient
from tests.mutations import JSON_VALUES, replace_one

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "data" / "r4-examples").glob("*.json"))
TYPES = ["Patient", "ServiceRequest", "Observation", "CarePlan", "Consent", "Encounter", "Task", "AuditEvent"]
NAMES = sorted({p.code for t in TYPES for p in default_registry().for_type(t)} | {
    "_id", "_lastUpdated", "_count", "_sort", "_include", "_revinclude", "_summary", "_elements", "_total",
    "_has:Observation:subject:code", "subject:Patient.name", "_text", "_content", "_tag", "_profile", "_type"})
MODIFIERS = ["", ":exact", ":contains", ":missing", ":not", ":identifier", ":text", ":above", ":below", ":in",
             ":iterate", ":Patient", ":bogus", "."]
VALUES = st.sampled_from([
    "", "x", "ge2020", "le2020-01-01T00:00:00Z", "eq1.5", "ne", "sa2020-13", "http://loinc.org|", "|x", "a|b|c",
    "true", "Patient/1", "1e400", "-5", "name", "-_lastUpdated", "Patient:subject", "*", "\\,", "2020-02-30",
    "gt9999-12-31", "lt0001-01-01", "ap", "Patient.name.given", "\u00e9", "0", "999999999999999999999", "%",
    "_id", "Observation:subject:Patient", "9999", "9999-12-31T23:59:59+14:00"])


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Repository]:
    where = tmp_path_factory.mktemp("no-server-errors")
    state = build_state(Settings(database_url=f"sqlite:///{where / 'store.sqlite'}", var_dir=where))
    ctx = AccessContext.system()
    made = state.repository.create(ctx, patient())
    state.repository.create(ctx, {"resourceType": "Observation", "status": "final", "code": {"text": "mood"},
                                  "subject": {"reference": f"Patient/{made.stored.id}"},
                                  "effectiveDateTime": "9999-12-31"})
    yield state.repository
    state.repository.engine.dispose()


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(rtype=st.sampled_from(TYPES),
       params=st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(MODIFIERS), st.lists(VALUES, min_size=1,
                                                                                               max_size=3)),
                       max_size=4))
def test_any_search_answers_or_says_why(repo: Repository, rtype: str, params: list[tuple[str, str, list[str]]]) -> None:
    query = [(name + modifier, ",".join(values)) for name, modifier, values in params]
    with contextlib.suppress(FhirError):
        repo.search(AccessContext.system(), repo.parse_search([rtype], query))


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(which=st.integers(0, len(EXAMPLES) - 1), pick=st.integers(0, 10_000), replacement=JSON_VALUES)
def test_any_one_value_replaced_is_stored_or_refused(repo: Repository, which: int, pick: int,
                                                     replacement: Any) -> None:
    res = json.loads(EXAMPLES[which].read_text())
    if not replace_one(res, pick, replacement):
        return
    with contextlib.suppress(FhirError):
        prepare(repo, res)  # validation, the write hooks' checks and the index rows


_PAT = "urn:uuid:11111111-1111-1111-1111-111111111111"
BUNDLE_ENTRIES: list[dict[str, Any]] = [
    {"fullUrl": _PAT, "resource": {"resourceType": "Patient", "name": [{"family": "Fuzz"}]},
     "request": {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=urn:x|1"}},
    {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                  "subject": {"reference": _PAT}}, "request": {"method": "POST", "url": "Observation"}},
    {"request": {"method": "GET", "url": "Patient?name=Fuzz"}},
    {"request": {"method": "DELETE", "url": "Observation?code=y"}},
    {"resource": {"resourceType": "Patient", "id": "fuzz9", "gender": "male"},
     "request": {"method": "PUT", "url": "Patient/fuzz9", "ifMatch": 'W/"1"'}},
    {"resource": {"resourceType": "Patient", "gender": "other"},
     "request": {"method": "PUT", "url": "Patient?identifier=urn:x|2"}},
]


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(pick=st.integers(0, 100_000), replacement=JSON_VALUES, kind=st.sampled_from(["transaction", "batch"]))
def test_any_entry_value_replaced_is_processed_or_refused(repo: Repository, pick: int, replacement: Any,
                                                          kind: str) -> None:
    entries = json.loads(json.dumps(BUNDLE_ENTRIES))
    assert replace_one(entries, pick, replacement)
    run = repo.transaction if kind == "transaction" else repo.batch
    with contextlib.suppress(FhirError):
        run(AccessContext.system(), entries)
