"""Engines for the embedded SQLite store and the production PostgreSQL store.

SQLite is tuned for a server: WAL so that readers never wait for the writer,
``synchronous=NORMAL`` (durable across process crashes; WAL keeps the file consistent on
power loss), a busy timeout so that several workers share one file, and a larger cache.
Long-running writers (the server, bulk loads) move the log's checkpoints to a thread of
their own with :func:`server.store.checkpoint.start_background_checkpoints`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.pool import QueuePool

from server.store.checkpoint import autocheckpoint_pages

MIGRATIONS = Path(__file__).parent / "migrations"


@contextmanager
def write_connection(engine: Engine) -> Iterator[Connection]:
    """A connection for a transaction that will write: on SQLite its BEGIN takes the write
    lock up front (IMMEDIATE), so that it waits for another writer instead of failing when it
    first writes after reading (a deferred transaction cannot upgrade a stale snapshot)."""
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn = conn.execution_options(sqlite_begin="IMMEDIATE")
        yield conn


def normalise_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and use psycopg 3 for them."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            poolclass=QueuePool,
            pool_size=8,
            max_overflow=8,
            connect_args={"check_same_thread": False, "timeout": 30},
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            # The driver's own transaction handling would issue BEGIN lazily and
            # (on Python 3.11) not at all for reads; take control so that every
            # unit of work is one real transaction.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA cache_size=-65536")
            cur.execute("PRAGMA temp_store=MEMORY")
            cur.execute("PRAGMA mmap_size=268435456")
            pages = autocheckpoint_pages(engine)
            if pages is not None:
                cur.execute(f"PRAGMA wal_autocheckpoint={pages}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            # Writers take the write lock up front (IMMEDIATE): a deferred transaction that
            # reads and then writes can fail at once when another writer got in between.
            mode = conn.get_execution_options().get("sqlite_begin", "")
            conn.exec_driver_sql(f"BEGIN {mode}".strip())

        return engine
    return create_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


#: Alembic's command API keeps module-level state while it runs, so two threads of one process
#: (the audit writer opening its store while the application migrates another) must take turns
_MIGRATING = threading.Lock()


def migrate(engine: Engine) -> None:
    """Bring the schema up to the newest migration (idempotent)."""
    cfg = alembic_config()
    with _MIGRATING, engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
