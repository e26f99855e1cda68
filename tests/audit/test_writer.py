"""The batched writer: few commits for many requests, nothing lost on shutdown (in-process
and a live server stopped with SIGTERM), retries while the store is down, and the bound."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from carebridge.config import Settings
from server.api.app import create_app
from server.audit.store import audit_database_url, open_repository
from server.auth.tokens import TokenService
from tests.api import ukdata as uk
from tests.audit.conftest import AUDITOR_SCOPE, stored_events
from tests.conftest import BASE


def _headers(app: Any, scope: str = AUDITOR_SCOPE) -> dict[str, str]:
    return {"Authorization": f"Bearer {app.state.api.tokens.issue('writer-test', scope)}",
            "Content-Type": "application/fhir+json"}


def _count(settings: Settings) -> int:
    store = open_repository(audit_database_url(settings))
    try:
        return len(stored_events(store))
    finally:
        store.engine.dispose()


def test_many_requests_are_stored_in_few_commits(audited_app, audit_settings):
    trail = audited_app.state.api.audit
    trail.interval, trail.batch_size = 3600.0, 100  # batches form by size alone
    trail.idle = 3600.0  # and the journal is not indexed meanwhile (that would be a commit of its own)
    commits: list[int] = []
    event.listen(trail.store.engine, "commit", lambda _conn: commits.append(1))
    h = _headers(audited_app)
    with TestClient(audited_app, base_url=BASE) as client:
        pid = client.post("/fhir/Patient", content=orjson.dumps(uk.service_user(1)), headers=h).json()["id"]
        for _ in range(249):
            assert client.get(f"/fhir/Patient/{pid}", headers=h).status_code == 200
        client.portal.call(trail.settle)
        assert trail.written == 250
        assert len(commits) == 3, "250 events in batches of 100: three commits"
        assert trail.batches == 3
        assert len(stored_events(trail.store)) == 250


def test_nothing_is_lost_when_the_application_stops(audited_app, audit_settings):
    trail = audited_app.state.api.audit
    trail.interval, trail.batch_size = 3600.0, 10_000  # nothing is written before the stop
    h = _headers(audited_app)
    with TestClient(audited_app, base_url=BASE) as client:
        for n in range(120):
            assert client.get(f"/fhir/Patient?family=F{n}", headers=h).status_code == 200
        assert len(trail.pending) == 120 and trail.written == 0
    assert trail.pending == [] and trail.written == 120
    assert _count(audit_settings) == 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_nothing_is_lost_when_a_live_server_gets_sigterm(audit_settings, tmp_path):
    port = _free_port()
    env = dict(os.environ, CAREBRIDGE_VAR_DIR=str(audit_settings.var_dir))
    env.pop("CAREBRIDGE_AUDIT_DATABASE_URL", None)
    carebridge = Path(sys.executable).parent / "carebridge"
    server = subprocess.Popen(
        [str(carebridge), "serve", "--port", str(port), "--database-url", audit_settings.database_url,
         "--log-level", "warning"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        token = TokenService(Path(audit_settings.var_dir)).issue("live-client", "system/*.rs")
        base = f"http://127.0.0.1:{port}/fhir"
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}) as http:
            for _ in range(600):
                try:
                    if http.get(f"{base}/metadata").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert server.poll() is None, server.stdout.read() if server.stdout else ""
                time.sleep(0.1)
            for n in range(80):
                assert http.get(f"{base}/Patient?family=Live{n}").status_code == 200
        server.send_signal(signal.SIGTERM)
        out, _ = server.communicate(timeout=120)
        assert server.returncode == 0, out
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert _count(audit_settings) == 80


def _blocked_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An audit store the server cannot open: its folder would be under a plain file."""
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    monkeypatch.setenv("CAREBRIDGE_AUDIT_DATABASE_URL", f"sqlite:///{blocker}/audit.sqlite")
    return blocker


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_store_that_is_down_is_retried_until_it_comes_back(audit_settings, tmp_path, monkeypatch, caplog):
    blocker = _blocked_store(monkeypatch, tmp_path)
    app = create_app(audit_settings)
    trail = app.state.api.audit
    h = _headers(app)
    with TestClient(app, base_url=BASE) as client:
        for n in range(30):
            assert client.get(f"/fhir/Patient?family=Down{n}", headers=h).status_code == 200
        while trail.failures < 2:
            client.portal.call(_pause)
        assert trail.written == 0 and len(trail.pending) == 30
        assert "storing 30 events failed" in caplog.text
        blocker.unlink()  # the store is back
        client.portal.call(trail.settle)
        assert trail.written == 30
        assert len(stored_events(trail.store)) == 30


async def _pause() -> None:
    import asyncio

    await asyncio.sleep(0.05)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_what_the_store_refuses_at_shutdown_is_kept_and_loaded_at_the_next_start(
    audit_settings, tmp_path, monkeypatch, caplog,
):
    blocker = _blocked_store(monkeypatch, tmp_path)
    app = create_app(audit_settings)
    trail = app.state.api.audit
    trail.drain_timeout = 0.5
    h = _headers(app)
    with TestClient(app, base_url=BASE) as client:
        for n in range(25):
            assert client.get(f"/fhir/Patient?family=Kept{n}", headers=h).status_code == 200
    (kept,) = (Path(audit_settings.var_dir) / "audit-pending").glob("audit-*.ndjson")
    assert len(kept.read_bytes().splitlines()) == 25
    assert "kept in" in caplog.text
    blocker.unlink()
    again = create_app(audit_settings)
    with TestClient(again, base_url=BASE) as client:
        client.portal.call(again.state.api.audit.settle)
        events = stored_events(again.state.api.audit.store)
    assert len(events) == 25
    assert {e["subtype"][0]["code"] for e in events} == {"search-type"}
    assert not kept.exists()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_full_queue_holds_requests_and_then_refuses_them(audit_settings, tmp_path, monkeypatch):
    blocker = _blocked_store(monkeypatch, tmp_path)
    app = create_app(audit_settings)
    trail = app.state.api.audit
    trail.max_pending, trail.full_wait = 3, 0.2
    h = _headers(app)
    with TestClient(app, base_url=BASE) as client:
        for n in range(3):
            assert client.get(f"/fhir/Patient?family=Full{n}", headers=h).status_code == 200
        r = client.get("/fhir/Patient?family=Refused", headers=h)
        assert r.status_code == 503
        assert r.json()["issue"][0]["code"] == "transient"
        blocker.unlink()
        client.portal.call(trail.settle)
        assert client.get("/fhir/Patient?family=Again", headers=h).status_code == 200
        client.portal.call(trail.settle)
        assert trail.written == 4


def test_one_application_served_by_two_event_loops_loses_nothing(audited_app, audit_settings):
    """Two clients of one application, each with its own event loop, open at once and
    closed one after the other (as the suite's fixtures do): every request is stored once."""
    trail = audited_app.state.api.audit
    h = _headers(audited_app)
    with TestClient(audited_app, base_url=BASE) as first, TestClient(audited_app, base_url=BASE) as second:
        for n in range(40):
            client = first if n % 2 else second
            assert client.get(f"/fhir/Patient?family=Loop{n}", headers=h).status_code == 200
        second.portal.call(trail.settle)
        for n in range(10):
            assert first.get(f"/fhir/Patient?family=Late{n}", headers=h).status_code == 200
    assert trail.pending == [] and trail.written == 50
    assert _count(audit_settings) == 50
