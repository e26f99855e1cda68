"""The write hot path: pre-compiled INSERT and DELETE statements run on the driver's cursor.

Every create runs one insert into ``resource`` and ``resource_version`` and one
multi-row insert per index table. Through SQLAlchemy's execution layer each statement
costs more than the database's own work, so the store compiles these statements once
per dialect (from the same Table objects the schema declares) and executes them on the
DBAPI cursor of the unit of work's connection, inside its transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Dialect, Table, bindparam, delete, insert

from server.store.schema import (
    INDEX_TABLES,
    compartment,
    compartment_outside,
    consent_rule,
    consent_term,
    resource,
    resource_version,
)

_CLEARED = (*INDEX_TABLES.values(), compartment, compartment_outside, consent_rule, consent_term)


class _Statement:
    def __init__(self, sql: str, columns: Sequence[str], positional: bool):
        self.sql = sql
        self.columns = tuple(columns)
        self.positional = positional
        # rows built by the indexer carry every column; itemgetter reads them in C
        self._get = itemgetter(*self.columns) if len(self.columns) > 1 else None

    def params(self, row: dict[str, Any]) -> Any:
        if self.positional:
            if self._get is not None:
                try:
                    return self._get(row)
                except KeyError:
                    pass
            return tuple(row.get(c) for c in self.columns)
        return {c: row.get(c) for c in self.columns}

    def many(self, rows: list[dict[str, Any]]) -> list[Any]:
        if self.positional and self._get is not None:
            try:
                return list(map(self._get, rows))
            except KeyError:
                pass
        return [self.params(r) for r in rows]


class RowWriter:
    def __init__(self, dialect: Dialect) -> None:
        self.positional = dialect.paramstyle in ("qmark", "numeric", "format")
        self._insert = {t.name: self._compile_insert(t, dialect) for t in (*_CLEARED, resource_version)}
        cols = [c.name for c in resource.columns if c.name != "pk"]
        stmt = insert(resource).values({c: None for c in cols}).returning(resource.c.pk)
        compiled = stmt.compile(dialect=dialect)
        order = list(compiled.positiontup or cols) if self.positional else cols
        self._insert_resource = _Statement(str(compiled), order, self.positional)
        self._delete = [
            _Statement(str(delete(t).where(t.c.resource_pk == bindparam("pk")).compile(dialect=dialect)),
                       ["pk"], self.positional)
            for t in _CLEARED
        ]

    def _compile_insert(self, table: Table, dialect: Dialect) -> _Statement:
        columns = [c.name for c in table.columns if not (c.primary_key and c.autoincrement is True)]
        stmt = insert(table).values({c: None for c in columns})
        compiled = stmt.compile(dialect=dialect)
        order = list(compiled.positiontup or columns) if self.positional else columns
        return _Statement(str(compiled), order, self.positional)

    @staticmethod
    def _cursor(conn: Connection) -> Any:
        return conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]

    def insert_resource(self, conn: Connection, row: dict[str, Any]) -> int:
        cur = self._cursor(conn)
        try:
            cur.execute(self._insert_resource.sql, self._insert_resource.params(row))
            return int(cur.fetchone()[0])
        finally:
            cur.close()

    def insert_rows(self, conn: Connection, tables: dict[str, list[dict[str, Any]]]) -> None:
        cur = self._cursor(conn)
        try:
            for name, rows in tables.items():
                if rows:
                    stmt = self._insert[name]
                    if len(rows) == 1:
                        cur.execute(stmt.sql, stmt.params(rows[0]))
                    else:
                        cur.executemany(stmt.sql, stmt.many(rows))
        finally:
            cur.close()

    def clear_index(self, conn: Connection, pk: int) -> None:
        cur = self._cursor(conn)
        try:
            for stmt in self._delete:
                cur.execute(stmt.sql, stmt.params({"pk": pk}))
        finally:
            cur.close()
