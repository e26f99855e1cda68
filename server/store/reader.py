"""The read hot path: the current row of one resource by type and id, on the driver's cursor.

A read by id is one indexed lookup that the database answers in microseconds; through
SQLAlchemy's statement building, compilation cache, transaction and result layers it cost
about ten times that (measured by profiling a read-by-id load). The store compiles the
statement once per dialect from the schema's Table and runs it on a pooled DBAPI
connection with no explicit transaction: a single SELECT sees one consistent snapshot on
both SQLite (autocommit, WAL) and PostgreSQL.

Only the lookup lives here. Whether the caller may see the row is still decided by the
access policy, in :meth:`~server.store.repository.Repository.read`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import Engine, bindparam, false, select

from server.store.schema import resource, token_index


class CurrentRow(NamedTuple):
    pk: int
    resource_type: str
    id: str
    version_id: int
    last_updated: int
    #: None once deleted
    content: bytes | None
    deleted: bool


class RowReader:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        r = resource.c
        stmt = select(r.pk, r.resource_type, r.id, r.version_id, r.last_updated, r.content, r.deleted).where(
            r.resource_type == bindparam("rtype"), r.id == bindparam("id")
        )
        compiled = stmt.compile(dialect=engine.dialect)
        self._sql = str(compiled)
        positional = engine.dialect.paramstyle in ("qmark", "numeric", "format")
        order = list(compiled.positiontup or ("rtype", "id"))
        self._params = (lambda rtype, id: tuple({"rtype": rtype, "id": id}[k] for k in order)) if positional else (
            lambda rtype, id: {"rtype": rtype, "id": id}
        )

        t = token_index.c
        by_token = (
            select(r.pk, r.resource_type, r.id, r.version_id, r.last_updated, r.content, r.deleted)
            .distinct()
            .select_from(token_index.join(resource, r.pk == t.resource_pk))
            .where(t.param_id == bindparam("pid"), t.code == bindparam("code"), t.system == bindparam("system"),
                   r.resource_type == bindparam("rtype"), r.deleted == false())
        )
        compiled = by_token.compile(dialect=engine.dialect)
        self._by_token_sql = str(compiled)
        names = list(compiled.positiontup or ("pid", "code", "system", "rtype"))
        self._by_token_params = (
            (lambda values: tuple(values[k] for k in names)) if positional else (lambda values: values)
        )

    def by_token(self, dbapi_conn: Any, resource_type: str, param_id: int, system: str, code: str,
                 limit: int) -> list[CurrentRow]:
        """Current resources of a type carrying ``system|code`` in a token parameter.

        Conditional creates and updates on a business identifier (an NHS number, an ODS
        code, a referral id) are the hot path of every feed; this answers them with one
        indexed join inside the caller's transaction (``dbapi_conn`` is its connection).
        """
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute(self._by_token_sql, self._by_token_params(
                {"pid": param_id, "code": code, "system": system, "rtype": resource_type}))
            rows = cursor.fetchmany(limit)
        finally:
            cursor.close()
        return [CurrentRow(row[0], row[1], row[2], row[3], row[4],
                           row[5] if row[5] is None or isinstance(row[5], bytes) else bytes(row[5]), bool(row[6]))
                for row in rows]

    def current(self, resource_type: str, id: str, dbapi_conn: Any = None) -> CurrentRow | None:
        """The current row of ``resource_type/id`` (deleted ones too), on a pooled connection
        of its own or, inside a transaction, on that transaction's ``dbapi_conn``."""
        conn: Any = dbapi_conn if dbapi_conn is not None else self.engine.raw_connection()
        try:
            cursor = conn.cursor()
            try:
                cursor.execute(self._sql, self._params(resource_type, id))
                row = cursor.fetchone()
            finally:
                cursor.close()
        finally:
            if dbapi_conn is None:
                conn.close()
        if row is None:
            return None
        content = row[5]
        if content is not None and not isinstance(content, bytes):
            content = bytes(content)
        return CurrentRow(row[0], row[1], row[2], row[3], row[4], content, bool(row[6]))
