"""Checkpointing the SQLite store's write-ahead log from a thread of its own.

In WAL mode every commit appends the pages it changed to the log, and a checkpoint copies
them back into the database file and syncs it. SQLite runs that checkpoint inside whichever
commit pushes the log past ``wal_autocheckpoint`` pages, so one write in every few dozen
pays for copying and syncing the work of all the others: on the server, where writes commit
on the event loop, every request in flight waits for it.

This checkpointer copies the log back every ``interval`` seconds from its own connection
(PASSIVE: it never waits for, nor holds up, readers and the writer), while the driver lets
other threads run. The writers' own automatic checkpoint stays, at a higher threshold, as
the bound on the log should this thread ever fall behind or stop.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import weakref

from sqlalchemy import Engine

log = logging.getLogger(__name__)

#: the writers' own checkpoint while a background checkpointer runs (pages of 4 KiB: 40 MiB)
BACKSTOP_PAGES = 10_000
#: how often the log is copied back
DEFAULT_INTERVAL = 0.1


class WalCheckpointer:
    """A daemon thread that runs ``PRAGMA wal_checkpoint(PASSIVE)`` on one database file."""

    def __init__(self, path: str, interval: float = DEFAULT_INTERVAL, owner: Engine | None = None) -> None:
        self.path = path
        #: the thread ends once the engine it serves is gone (or the file is)
        self._owner = weakref.ref(owner) if owner is not None else None
        self.interval = interval
        #: the last checkpoint's (frames in the log, frames copied back)
        self.last: tuple[int, int] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)

    def start(self) -> WalCheckpointer:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the checkpoint under way, if any (the writers' own checkpoint takes over)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def checkpoint(self, conn: sqlite3.Connection) -> None:
        """One passive checkpoint; ``last`` says how far it got."""
        row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.last = (int(row[1]), int(row[2]))

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error:
            log.exception("cannot open %s to checkpoint its log; the writers checkpoint it themselves", self.path)
            return
        try:
            while not self._stop.wait(self.interval):
                if (self._owner is not None and self._owner() is None) or not os.path.exists(self.path):
                    break
                try:
                    self.checkpoint(conn)
                except sqlite3.Error as exc:  # a busy or vanished file: try again next time
                    log.debug("checkpoint of %s skipped: %s", self.path, exc)
        finally:
            conn.close()


_RUNNING: weakref.WeakKeyDictionary[Engine, WalCheckpointer] = weakref.WeakKeyDictionary()


def sqlite_path(engine: Engine) -> str | None:
    """The file of a SQLite engine's store; None for PostgreSQL and in-memory stores."""
    if engine.dialect.name != "sqlite":
        return None
    path = engine.url.database
    if not path or path == ":memory:" or path.startswith("file::memory:"):
        return None
    return path


def start_background_checkpoints(engine: Engine, interval: float = DEFAULT_INTERVAL) -> WalCheckpointer | None:
    """Checkpoint ``engine``'s log from a thread (once per engine); None where there is no log."""
    path = sqlite_path(engine)
    if path is None:
        return None
    running = _RUNNING.get(engine)
    if running is not None and running.running:
        return running
    checkpointer = WalCheckpointer(path, interval, owner=engine).start()
    _RUNNING[engine] = checkpointer
    # connections opened from now on leave the routine checkpoints to the thread; those already
    # pooled keep the default threshold, which only makes them checkpoint sooner
    engine.pool.dispose()
    return checkpointer


def stop_background_checkpoints(engine: Engine) -> None:
    checkpointer = _RUNNING.pop(engine, None)
    if checkpointer is not None:
        checkpointer.stop()


def autocheckpoint_pages(engine: Engine) -> int | None:
    """The ``wal_autocheckpoint`` a new connection of ``engine`` is given (None: SQLite's default)."""
    running = _RUNNING.get(engine)
    return BACKSTOP_PAGES if running is not None and running.running else None
