"""The audit trail: an AuditEvent for every ``/fhir`` request and token request, stored in
batches off the request path.

:class:`AuditMiddleware` wraps the FHIR router. When a response has gone it appends one
:class:`~server.audit.events.Access` to the trail's queue (a list append; no I/O, no JSON).
A writer task wakes every ``interval`` seconds, or as soon as ``batch_size`` events wait,
and on a worker thread looks up the patients concerned, builds the AuditEvents and appends
the whole batch to the audit store's journal in one transaction. The journal is indexed
when the server is idle (``idle`` seconds without a request), or regardless once
``max_unindexed`` events wait; any search of the audit store indexes it first
(:class:`~server.audit.store.AuditRepository`), so no reader misses an event.

Nothing is dropped:

* a failed batch goes back to the head of the queue and is retried with back-off
  (0.2 s doubling to 5 s), logged at every failure;
* the queue is bounded (``max_pending``): when it is full, new requests wait for room
  before they are handled (they are not answered without their audit), and after
  ``full_wait`` seconds they are refused with 503 (logged);
* on shutdown (the application's lifespan end, which uvicorn runs on SIGTERM and Ctrl-C)
  the queue is drained; if the store still refuses after ``drain_timeout`` seconds, what
  is left is written as NDJSON to ``<var>/audit-pending/`` and loaded again at the next
  start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from anyio import to_thread

from server.audit import capture
from server.audit.events import Access, instant, outcome_code, rest_event
from server.audit.events import token_event as build_token_event
from server.audit.store import (
    WRITER,
    AuditRepository,
    compartment_patients,
    index_journal,
    insert_events,
    journal_events,
)
from server.consent.context import AccessContext
from server.definitions.search_parameters import SearchParameterRegistry
from server.store.repository import Repository

log = logging.getLogger("carebridge.audit")

_TOKEN_OUTCOMES = frozenset({"issued", "success", "granted", "ok"})


class AuditUnavailable(Exception):
    pass


class AuditTrail:
    def __init__(
        self,
        store: Repository | Callable[[], Repository],
        clinical: Repository,
        *,
        base_url: str | None = None,
        interval: float = 0.2,
        batch_size: int = 250,
        max_pending: int = 50_000,
        full_wait: float = 10.0,
        drain_timeout: float = 10.0,
        spill_dir: Path | None = None,
        idle: float = 0.5,
        index_chunk: int = 500,
        max_unindexed: int = 200_000,
    ) -> None:
        self._store = store if isinstance(store, Repository) else None
        self._open_store = store if not isinstance(store, Repository) else None
        self.clinical = clinical
        self.base_url = base_url
        self.interval = interval
        self.batch_size = batch_size
        self.max_pending = max_pending
        self.full_wait = full_wait
        self.drain_timeout = drain_timeout
        self.spill_dir = spill_dir
        self.idle = idle
        self.index_chunk = index_chunk
        self.max_unindexed = max_unindexed
        self.pending: list[Access] = []
        #: journalled events not yet indexed, as far as this process knows (at start: maybe some)
        self.unindexed = 1
        self._last_record = 0.0
        #: counters, for tests and the log
        self.batches = 0
        self.written = 0
        self.indexed = 0
        self.failures = 0
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._room: asyncio.Event | None = None
        self._closing = False
        self._recovered = False
        self._busy = False
        self._lock = threading.Lock()
        self._opening = threading.Lock()

    # -- the store ---------------------------------------------------------------------------
    @property
    def store(self) -> Repository:
        """The audit store, opened (and migrated) on first use."""
        if self._store is None:
            with self._opening:  # the writer, the idle indexer and flush() may all get here first
                if self._store is None:
                    assert self._open_store is not None
                    self._store = self._open_store()
        return self._store

    @property
    def registry(self) -> SearchParameterRegistry:
        return self.clinical.registry

    # -- recording ---------------------------------------------------------------------------
    def record(self, access: Access) -> None:
        """Queue one event (never blocks; see :meth:`room` for the bound)."""
        self.pending.append(access)
        self._last_record = time.monotonic()
        self._ensure_writer()
        if len(self.pending) >= self.batch_size and self._wake is not None:
            self._wake.set()

    async def room(self) -> None:
        """Wait until the queue has room; :class:`AuditUnavailable` after ``full_wait`` seconds."""
        if len(self.pending) < self.max_pending:
            return
        self._ensure_writer()
        deadline = time.monotonic() + self.full_wait
        while len(self.pending) >= self.max_pending:
            left = deadline - time.monotonic()
            if left <= 0:
                log.error("audit queue full (%d events waiting): refusing a request", len(self.pending))
                raise AuditUnavailable()
            assert self._room is not None
            self._room.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._room.wait(), left)

    def token_event(self, client_id: str | None, outcome: Any, reason: str | None, request: Any, *,
                    grant: Any = None) -> None:
        """``ApiState.on_token_event``: a token issued (``outcome`` "issued", "success", 0 or
        True; ``grant`` what it carries) or refused (anything else: the OAuth error code such
        as "invalid_client", or 4/8/12; ``reason`` why)."""
        if outcome is True or (isinstance(outcome, str) and outcome.lower() in _TOKEN_OUTCOMES):
            code = "0"
        elif isinstance(outcome, int) and not isinstance(outcome, bool) and str(outcome) in ("0", "4", "8", "12"):
            code = str(outcome)
        else:
            code = "4"
            if isinstance(outcome, str) and reason and outcome not in reason:
                reason = f"{outcome}: {reason}"
            elif isinstance(outcome, str) and not reason:
                reason = outcome
        scope = getattr(request, "scope", None) or {}
        client = scope.get("client")
        ctx = None
        if grant is not None:
            ctx = AccessContext(
                client_id=client_id or grant.client.client_id, scopes=(), organization=grant.client.organization,
                fhir_user=grant.fhir_user, purpose_of_use=grant.purpose_of_use,
                break_glass_reason=grant.break_glass_reason,
            )
        elif client_id:
            ctx = AccessContext(client_id=client_id, scopes=())
        event = build_token_event(ctx, code, reason, client[0] if client else None, _header(scope, b"x-request-id"),
                                  self.base_url, scope=getattr(grant, "scope", None))
        self.record(Access(recorded=event["recorded"], subtype="login", action="E",
                           status=200 if code == "0" else 401, ctx=None, built=event))

    # -- the writer --------------------------------------------------------------------------
    def _ensure_writer(self) -> None:
        """A writer task on the running loop. A task left on another loop (an application
        served by one event loop after another, as test clients do) is replaced; it stops
        at its next turn, when it sees it is no longer the writer."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a command-line caller): flush() stores the queue
        task = self._task
        if task is not None and not task.done() and task.get_loop() is loop:
            return
        self._wake, self._room = asyncio.Event(), asyncio.Event()
        self._task = loop.create_task(self._run(self._wake, self._room), name="audit-writer")

    async def start(self) -> None:
        if not self._recovered:
            self._recovered = True
            self._recover()
        self._ensure_writer()

    async def _run(self, wake: asyncio.Event, room: asyncio.Event) -> None:
        delay = 0.0
        while True:
            if delay:
                await asyncio.sleep(delay)
            elif len(self.pending) < self.batch_size and not self._closing:
                wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), self.interval)
            if self._task is not asyncio.current_task():
                return  # replaced by a writer on another loop
            if not self.pending:
                if self._closing:
                    return
                if self._index_due():
                    await self._index_in_thread()
                continue
            self._busy = True
            try:
                await to_thread.run_sync(self._write_next)
            except Exception:
                self.failures += 1
                delay = min(max(delay * 2, 0.2), 5.0)
                log.exception("audit: storing %d events failed (%d waiting); retrying in %.1fs",
                              min(len(self.pending), self.batch_size), len(self.pending), delay)
                if self._closing and delay >= 5.0:
                    return
                continue
            finally:
                self._busy = False
            delay = 0.0
            if len(self.pending) < self.max_pending:
                room.set()
            if self.unindexed >= self.max_unindexed:
                await self._index_in_thread()

    async def _index_in_thread(self) -> None:
        """Index a chunk of the journal; a failure is logged and left for the next turn
        (the events are safe in the journal meanwhile)."""
        try:
            await to_thread.run_sync(self._index_next)
        except Exception:
            log.exception("audit: indexing the journal failed (about %d events waiting); retrying later",
                          self.unindexed)
            self._last_record = time.monotonic()  # back off for one idle period

    def _write_next(self) -> None:
        """Store the batch at the head of the queue and take it off (a worker thread). One
        writer at a time, so a batch is never stored twice, even by writers of two loops."""
        with self._lock:
            batch = self.pending[: self.batch_size]
            if batch:
                self.write_batch(batch)
                del self.pending[: len(batch)]

    def write_batch(self, batch: list[Access]) -> None:
        """Build and store one batch of events in one transaction (a worker thread): into
        the journal of an audit store of its own (indexed later, see :meth:`_index_due`),
        indexed at once when AuditEvents share the clinical store."""
        events = self.build(batch)
        store = self.store
        if isinstance(store, AuditRepository):
            journal_events(store, WRITER, events)
            self.unindexed += len(events)
        else:
            insert_events(store, WRITER, events)
        self.batches += 1
        self.written += len(events)

    def _index_due(self) -> bool:
        """Index the journal when no request has come for ``idle`` seconds, or regardless
        once ``max_unindexed`` events wait (a server busy for a long time still catches up)."""
        if self.unindexed <= 0:
            return False
        return self.unindexed >= self.max_unindexed or time.monotonic() - self._last_record >= self.idle

    def _index_next(self) -> None:
        """Index one chunk of the journal (a worker thread)."""
        done = index_journal(self.store, limit=self.index_chunk)
        self.unindexed = max(self.unindexed - done, 0) if done else 0
        self.indexed += done

    def build(self, batch: list[Access]) -> list[dict[str, Any]]:
        touched = [t for a in batch if a.built is None for t in a.resources]
        patients = compartment_patients(self.clinical.engine, self.registry, touched) if touched else {}
        events = []
        for access in batch:
            if access.built is not None:
                events.append(access.built)
                continue
            named = list(access.patients)
            for rtype, rid, *_ in access.resources:
                named.extend(sorted(patients.get((rtype, rid), ())))
            access.patients = named
            events.append(rest_event(access, self.base_url))
        return events

    async def settle(self) -> None:
        """Wait until everything queued so far is stored (tests; an operator's check)."""
        while self.pending or self._busy:
            self._ensure_writer()
            if self._wake is not None:
                self._wake.set()
            await asyncio.sleep(0.01)

    def flush(self) -> None:
        """Store everything queued, now, on this thread (command-line callers and tests)."""
        while self.pending:
            self._write_next()

    async def close(self) -> None:
        """Drain the queue (the application is stopping)."""
        self._closing = True
        task = self._task
        if self.pending or (task is not None and task.get_loop() is not asyncio.get_running_loop()):
            self._ensure_writer()
            task = self._task
        if task is not None and task.get_loop() is asyncio.get_running_loop():
            assert self._wake is not None
            self._wake.set()
            try:
                await asyncio.wait_for(asyncio.shield(task), self.drain_timeout)
            except TimeoutError:
                task.cancel()
        if self.pending:
            self._spill()
        self._closing = False
        if self._store is not None and self._store is not self.clinical:
            self._store.engine.dispose()
            if self._open_store is not None:
                self._store = None

    # -- surviving a store that is down at shutdown ---------------------------------------------
    def _spill(self) -> None:
        if self.spill_dir is None:
            log.error("audit: %d events could not be stored and there is nowhere to keep them", len(self.pending))
            return
        self.spill_dir.mkdir(parents=True, exist_ok=True)
        path = self.spill_dir / f"audit-{time.strftime('%Y%m%dT%H%M%S')}-{id(self):x}.ndjson"
        with path.open("wb") as out:
            for event in self.build(self.pending):
                out.write(orjson.dumps(event) + b"\n")
        log.error("audit: the store refused %d events at shutdown; kept in %s, loaded at the next start",
                  len(self.pending), path)
        self.pending.clear()

    def _recover(self) -> None:
        if self.spill_dir is None or not self.spill_dir.is_dir():
            return
        for path in sorted(self.spill_dir.glob("audit-*.ndjson")):
            events = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
            self.pending.extend(Access(recorded=e.get("recorded", ""), subtype="", action="", status=0, ctx=None,
                                       built=e) for e in events)
            path.unlink()
            log.warning("audit: %d events kept at the last shutdown (%s) queued again", len(events), path.name)


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


class AuditMiddleware:
    """Wraps the FHIR router: one :class:`Access` per request, queued when the response is out."""

    def __init__(self, app: Any, trail: AuditTrail) -> None:
        self.app = app
        self.trail = trail

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope["path"]
        if path in capture.UNAUDITED:
            await self.app(scope, receive, send)
            return
        try:
            await self.trail.room()
        except AuditUnavailable:
            from server.api.http import error_response
            from server.fhir.errors import FhirError

            response = error_response(FhirError("the audit trail cannot record requests now; try again later",
                                                status=503, code="transient"))
            await response(scope, receive, send)
            return
        recorded = instant()
        status = 500
        error_body: list[bytes] = []

        async def watch(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and status >= 400:
                error_body.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            self.trail.record(_access(scope, recorded, status, b"".join(error_body)))


def _access(scope: dict[str, Any], recorded: str, status: int, error_body: bytes) -> Access:
    method, path = scope["method"], scope["path"]
    subtype, action = capture.classify(method, path)
    n: capture.Notes | None = scope.get(capture.NOTES)
    if n is not None and n.subtype:
        subtype = n.subtype
        action = capture.ACTIONS.get(subtype, action)
    if n is not None and n.created and action == "U":
        action = "C"
    client = scope.get("client")
    # the applied query a handler noted, else (an operation, a refused search) the URL's
    query = n.query if n is not None else None
    if query is None and subtype.startswith(("search", "history", "operation")):
        query = scope.get("query_string", b"").decode("latin-1")
    return Access(
        recorded=recorded, subtype=subtype, action=action, status=status,
        ctx=scope.get(capture.CONTEXT), method=method, path=path,
        address=client[0] if client else None, request_id=_header(scope, b"x-request-id"),
        query=query, outcome_desc=_diagnostics(status, error_body),
        operation=capture.operation_name(path),
        resources=n.resources if n is not None and status < 400 else [],
        patients=n.patients if n is not None else [],
    )


def _diagnostics(status: int, body: bytes) -> str | None:
    if status < 400 or not body:
        return None
    try:
        outcome = orjson.loads(body)
        texts = [i.get("diagnostics") for i in outcome.get("issue", []) if i.get("diagnostics")]
    except (orjson.JSONDecodeError, AttributeError):
        return None
    code = outcome_code(status)
    return f"HTTP {status}: " + "; ".join(texts) if texts else f"HTTP {status} (outcome {code})"


def trail_for(settings: Any, clinical: Repository, env: dict[str, str] | None = None) -> AuditTrail | None:
    """The application's trail, from the settings; None when ``CAREBRIDGE_AUDIT=off``."""
    import os

    from server.audit.store import audit_database_url, open_repository, same_store

    env = dict(os.environ) if env is None else env
    if env.get("CAREBRIDGE_AUDIT", "on").lower() in ("off", "0", "false", "no"):
        log.warning("audit is off (CAREBRIDGE_AUDIT): requests are not recorded")
        return None
    url = audit_database_url(settings, env)
    store: Repository | Callable[[], Repository]
    if same_store(url, settings.database_url):
        store = clinical
    else:
        def store() -> Repository:
            return open_repository(url, clinical.registry, base_url=settings.fhir_base_url,
                                   default_page_size=settings.default_page_size,
                                   max_page_size=settings.max_page_size)
    return AuditTrail(store, clinical, base_url=settings.fhir_base_url,
                      spill_dir=Path(settings.var_dir) / "audit-pending")
