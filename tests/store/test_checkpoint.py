"""The background WAL checkpointer: it copies the log back, the writers keep a backstop, and
the thread ends with its store."""

from __future__ import annotations

import gc
import sqlite3
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from server.store import checkpoint
from server.store.engine import make_engine, migrate


def _wait_for(condition, what: str, attempts: int = 200) -> None:  # type: ignore[no-untyped-def]
    for _ in range(attempts):
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def test_writers_keep_a_backstop_and_the_thread_copies_the_log_back(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000  # SQLite's default
    running = checkpoint.start_background_checkpoints(engine, interval=0.02)
    assert running is not None and running.running
    assert checkpoint.start_background_checkpoints(engine) is running  # once per engine
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == checkpoint.BACKSTOP_PAGES
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (v BLOB)"))
            for _ in range(200):
                conn.execute(text("INSERT INTO t VALUES (randomblob(4000))"))
        # 200 pages of 4 KiB were logged; the writers' own checkpoint (now at 10,000 pages) did
        # not run, so only the thread can have copied them back
        _wait_for(lambda: running.last is not None and running.last[0] >= 200 and running.last[1] == running.last[0],
                  "the thread to copy the whole log back")
        engine.dispose()
        # the database file itself holds the rows: read it with the log out of the way
        assert (tmp_path / "store.db-wal").stat().st_size > 0  # the log is still there beside it
        with sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True) as conn:
            assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 200
    finally:
        checkpoint.stop_background_checkpoints(engine)
    assert not running.running


def test_the_thread_ends_when_its_engine_is_gone(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    migrate(engine)
    running = checkpoint.start_background_checkpoints(engine, interval=0.02)
    assert running is not None
    engine.dispose()
    del engine
    gc.collect()
    _wait_for(lambda: not running.running, "the thread to end after its engine")


def test_the_thread_ends_when_its_file_is_removed(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    running = checkpoint.start_background_checkpoints(engine, interval=0.02)
    assert running is not None
    engine.dispose()
    for p in tmp_path.glob("store.db*"):
        p.unlink()
    _wait_for(lambda: not running.running, "the thread to end after its file")
    checkpoint.stop_background_checkpoints(engine)


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_no_log_no_thread(url: str) -> None:
    assert checkpoint.start_background_checkpoints(make_engine(url)) is None


def test_postgres_has_no_thread(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    assert checkpoint.start_background_checkpoints(engine) is None
    engine.dispose()


def test_the_server_checkpoints_in_the_background(tmp_path: Path) -> None:
    from carebridge.config import Settings
    from server.api.app import build_state

    api = build_state(Settings(database_url=f"sqlite:///{tmp_path / 'store.db'}", var_dir=tmp_path))
    try:
        running = checkpoint._RUNNING.get(api.repository.engine)
        assert running is not None and running.running
    finally:
        checkpoint.stop_background_checkpoints(api.repository.engine)
        api.repository.engine.dispose()
