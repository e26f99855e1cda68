"""The audit journal: while requests are served the trail appends AuditEvents to a journal
(no index rows); they are indexed when the server is idle, or as soon as anyone searches
the trail, exactly once even when two indexers race, and the migration adds and drops it."""

from __future__ import annotations

import threading
import time
from typing import Any

import orjson
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, inspect, select

from server.audit.store import WRITER, index_journal, journal_events, journal_waiting
from server.store.engine import migrate
from server.store.schema import audit_journal, resource, token_index
from tests.api import ukdata as uk
from tests.audit.conftest import AUDITOR_SCOPE, stored_events
from tests.conftest import BASE, alembic_step


def _headers(app: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {app.state.api.tokens.issue('journal-test', AUDITOR_SCOPE)}",
            "Content-Type": "application/fhir+json"}


def _journalled(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(audit_journal)).scalar_one())


def _audit_events(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(resource)
                                .where(resource.c.resource_type == "AuditEvent")).scalar_one())


def test_busy_requests_are_journalled_and_a_search_indexes_them_first(audited_app):
    trail = audited_app.state.api.audit
    trail.idle = 3600.0  # never idle: only the search indexes
    h = _headers(audited_app)
    with TestClient(audited_app, base_url=BASE) as client:
        pid = client.post("/fhir/Patient", content=orjson.dumps(uk.service_user(1)), headers=h).json()["id"]
        for _ in range(59):
            assert client.get(f"/fhir/Patient/{pid}", headers=h).status_code == 200
        client.portal.call(trail.settle)
        engine = trail.store.engine
        assert _journalled(engine) == 60 and _audit_events(engine) == 0
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(token_index)).scalar_one() == 0
        found = client.get(f"/fhir/AuditEvent?patient=Patient/{pid}&_count=100&_total=accurate", headers=h).json()
        # the 60 events of the requests, and this search's own event is only queued, not yet stored
        assert found["total"] == 60
        assert _journalled(engine) == 0 and _audit_events(engine) == 60
        event = found["entry"][0]["resource"]
        assert event["id"] and event["meta"]["versionId"] == "1" and event["recorded"]


def test_an_idle_server_indexes_the_journal_by_itself(audited_app):
    trail = audited_app.state.api.audit
    trail.idle, trail.interval = 0.05, 0.05
    h = _headers(audited_app)
    with TestClient(audited_app, base_url=BASE) as client:
        for n in range(30):
            assert client.get(f"/fhir/Patient?family=Idle{n}", headers=h).status_code == 200
        client.portal.call(trail.settle)
        engine = trail.store.engine
        # bounded wait (30 s) for the writer's idle turn; the count, not the journal, is
        # the signal: the journal empties when the indexing commits, a moment before the
        # indexer's thread returns and counts what it did
        for _ in range(600):
            if trail.indexed >= 30 and not journal_waiting(trail.store):
                break
            time.sleep(0.05)
        assert _journalled(engine) == 0, f"indexed {trail.indexed}, failures {trail.failures}"
        assert trail.indexed >= 30 and _audit_events(engine) >= 30


def test_two_indexers_racing_index_each_event_once(audited_app):
    trail = audited_app.state.api.audit
    store = trail.store
    events = [{"resourceType": "AuditEvent", "recorded": f"2026-12-03T10:{n // 60:02d}:{n % 60:02d}Z",
               "type": {"code": "rest"}, "action": "R", "outcome": "0",
               "agent": [{"requestor": True}], "source": {"observer": {"display": "race"}}} for n in range(1200)]
    for start in range(0, len(events), 300):
        journal_events(store, WRITER, events[start:start + 300])
    counts: list[int] = []
    threads = [threading.Thread(target=lambda: counts.append(index_journal(store, chunk=100))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(counts) == 1200
    assert _journalled(store.engine) == 0 and _audit_events(store.engine) == 1200
    with store.engine.connect() as conn:
        stored = [orjson.loads(c) for c in conn.execute(select(resource.c.content)).scalars()]
    assert sorted(e["recorded"] for e in stored) == sorted(e["recorded"] for e in events)
    assert len(stored_events(store, _count="1000")) == 1000  # and searchable (one page's worth)


def test_events_journalled_before_a_stop_are_found_after_it(audited_app, audit_settings):
    from server.api.app import create_app

    trail = audited_app.state.api.audit
    trail.idle = 3600.0
    h = _headers(audited_app)
    with TestClient(audited_app, base_url=BASE) as client:
        for n in range(25):
            client.get(f"/fhir/Patient?family=Stop{n}", headers=h)
    stopped = _engine(audit_settings)
    assert _journalled(stopped) == 25 and _audit_events(stopped) == 0  # drained into the journal at the stop
    stopped.dispose()
    again = create_app(audit_settings)
    with TestClient(again, base_url=BASE) as client:
        found = client.get("/fhir/AuditEvent?subtype=search-type&_count=100&_total=accurate",
                           headers=_headers(again)).json()
        assert found["total"] == 25


def _engine(settings: Any) -> Engine:
    from server.audit.store import audit_database_url, make_audit_engine

    return make_audit_engine(audit_database_url(settings))


def test_0006_adds_the_audit_journal_and_downgrades(fresh_engine: Engine) -> None:
    alembic_step(fresh_engine, "upgrade", "0005")
    assert "audit_journal" not in inspect(fresh_engine).get_table_names()
    migrate(fresh_engine)
    columns = {c["name"] for c in inspect(fresh_engine).get_columns("audit_journal")}
    assert columns == {c.name for c in audit_journal.columns}
    alembic_step(fresh_engine, "downgrade", "0005")
    assert "audit_journal" not in inspect(fresh_engine).get_table_names()
