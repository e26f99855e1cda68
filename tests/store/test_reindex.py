"""``carebridge reindex``: index rows built from other definitions are found at start-up and
rebuilt, and nothing else is touched."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import Engine, delete, func, select, update

from carebridge.cli import main
from carebridge.config import Settings
from server.definitions import search_parameters
from server.definitions.search_parameters import default_registry
from server.store.engine import make_engine, migrate, write_connection
from server.store.reindex import check_definitions, record, stale_params
from server.store.schema import reference_index, search_param_state, token_index
from tests.conftest import patient


def _referral(pid: str) -> dict[str, Any]:
    return {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
            "subject": {"reference": f"Patient/{pid}"}, "code": {"text": "Assessment"}}


def test_a_changed_parameter_is_reported_and_rebuilt(settings: Settings, fhir: Any,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    pid = fhir.create(patient())["id"]
    fhir.create(_referral(pid))
    registry = default_registry()
    subject = registry.get("ServiceRequest", "subject")
    status = registry.get("ServiceRequest", "status")
    assert subject is not None and status is not None
    engine = make_engine(settings.database_url)
    try:
        # what a store indexed under another definition of ServiceRequest.subject looks like
        with engine.begin() as conn:
            conn.execute(update(search_param_state).where(search_param_state.c.param_id == subject.param_id)
                         .values(expression_hash="0" * 16))
            conn.execute(delete(reference_index).where(reference_index.c.param_id == subject.param_id))
        assert [p.code for p in check_definitions(engine, registry)] == ["subject"]
        assert fhir.get(f"ServiceRequest?subject=Patient/{pid}").json().get("entry", []) == []
        with engine.connect() as conn:
            status_rows = conn.execute(select(func.count()).select_from(token_index)
                                       .where(token_index.c.param_id == status.param_id)).scalar_one()

        assert main(["reindex", "--database-url", settings.database_url]) == 0
        assert "1 search parameters rebuilt over 1 resources" in capsys.readouterr().out
        found = fhir.get(f"ServiceRequest?subject=Patient/{pid}").json()
        assert [e["resource"]["subject"]["reference"] for e in found["entry"]] == [f"Patient/{pid}"]
        with engine.connect() as conn:
            assert stale_params(conn, registry) == []
            assert conn.execute(select(func.count()).select_from(token_index)
                                .where(token_index.c.param_id == status.param_id)).scalar_one() == status_rows

        assert main(["reindex", "--database-url", settings.database_url]) == 0
        assert "every search parameter is up to date" in capsys.readouterr().out
    finally:
        engine.dispose()


def test_a_new_extraction_revision_makes_every_parameter_stale(settings: Settings, fhir: Any,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    fhir.create(patient())
    engine = make_engine(settings.database_url)
    try:
        registry = default_registry()
        with engine.connect() as conn:
            assert stale_params(conn, registry) == []
            monkeypatch.setattr(search_parameters, "EXTRACTION_REVISION", search_parameters.EXTRACTION_REVISION + 1)
            assert len(stale_params(conn, registry)) == len(registry.all_indexed())
    finally:
        engine.dispose()


def test_workers_starting_together_on_a_new_store_record_its_definitions_once(fresh_engine: Engine) -> None:
    """One worker records while another reads: the second waits, then finds nothing to record
    (on PostgreSQL its insert used to collide with the first's rows and the worker died)."""
    migrate(fresh_engine)
    registry = default_registry()
    outcome: dict[str, Any] = {}

    def second_worker() -> None:
        try:
            outcome["stale"] = check_definitions(fresh_engine, registry)
        except Exception as exc:  # what the test is about: reported below, not lost in the thread
            outcome["error"] = exc

    with write_connection(fresh_engine) as first:
        with first.begin():
            record(first, registry.all_indexed())
            racer = threading.Thread(target=second_worker)
            racer.start()
            time.sleep(0.3)  # the second worker is now waiting on the first's rows
        racer.join(30)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["stale"] == []
    with fresh_engine.connect() as conn:
        recorded = conn.execute(select(func.count()).select_from(search_param_state)).scalar_one()
    assert recorded == len(registry.all_indexed())
