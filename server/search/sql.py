"""Compiling a :class:`SearchQuery` into SQL predicates over the index tables.

Every predicate is a condition on an alias of the ``resource`` table, of the form
``resource.pk IN (SELECT resource_pk FROM <index> WHERE ...)``: the index rows narrow the
resources, and the database drives the lookup from whichever index is most selective.
Chains and ``_has`` join through ``reference_index``; the targets and sources they pass
through must themselves be visible to the caller, so the compiler asks for the caller's
visibility predicate of every type it touches (hidden resources never match).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, FromClause, and_, false, not_, or_, select, true, union_all

from server.fhir.dates import DateFormatError, parse_range, to_micros
from server.fhir.errors import BadRequest
from server.fhir.text import normalise
from server.search.query import Clause, Value
from server.search.ranges import low_access, shape_of
from server.store.schema import (
    date_index,
    number_index,
    reference_index,
    resource,
    string_index,
    token_index,
    uri_index,
)

#: (resource type, alias) -> predicate: what of that type the caller may see
VisibleFn = Callable[[str, FromClause], ColumnElement[bool]]


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _prefix_range(column: Any, prefix: str) -> ColumnElement[bool]:
    """``column`` starts with ``prefix``, as a range that a b-tree index can serve."""
    return and_(column >= prefix, column < prefix + "\U0010ffff")


class SqlCompiler:
    def __init__(self, base_url: str | None, visible: VisibleFn, *, probe_hint: bool = True):
        self.base_url = base_url.rstrip("/") if base_url else None
        #: keep a probe off the (parameter, value) index with "+ 0" (SQLite, see _pid)
        self.probe_hint = probe_hint
        self.visible = visible
        #: compile membership as a correlated EXISTS probe (for a scan in key order)
        #: rather than ``pk IN (subquery)`` (for a clause that drives the query)
        self.correlated = False
        #: the index subquery of the clause compiled last (for selectivity estimates)
        self.last_subquery: Any = None
        #: read bounded-width date clauses from a bounded stretch of the low index (off:
        #: the plain comparisons alone, which give the same rows)
        self.narrow_dates = True

    def _pid(self, table: Any, pid: int) -> ColumnElement[bool]:
        """The index rows of one parameter. In a probe on SQLite ("+ 0") the planner is kept
        off the (parameter, value) index: a probe looks up one resource's rows by
        ``resource_pk``, and SQLite, without statistics, would otherwise scan the value range
        per probe. PostgreSQL plans from its statistics, which an expression would blind (it
        then guessed a handful of matches for ``status=active`` and scanned the whole token
        table to join them)."""
        if self.correlated and self.probe_hint:
            return table.c.param_id + 0 == pid
        return table.c.param_id == pid

    def _member(self, r: FromClause, sub: Any) -> ColumnElement[bool]:
        """``r`` is among the resources ``sub`` (a select of ``resource_pk``) names."""
        self.last_subquery = sub
        if self.correlated:
            column = sub.selected_columns[0]
            probe = sub.where(column == r.c.pk)
            if not self.probe_hint:
                # PostgreSQL turns a plain EXISTS into a semi-join that reads every match
                # before the sort and the limit (270 ms for one LOINC code at 1M); an OFFSET
                # keeps it a correlated probe, so the walk stops at the page
                probe = probe.offset(0)
            return probe.exists()
        return r.c.pk.in_(sub)

    # -- entry point -----------------------------------------------------------------------
    def clause(self, rtype: str, r: FromClause, clause: Clause) -> ColumnElement[bool]:
        if clause.has is not None:
            return self._has(rtype, r, clause)
        if clause.chain:
            return self._chain(r, clause)
        if clause.param is None:
            code = clause.name.partition(":")[0]
            if code == "_id":
                return self._id(r, clause)
            return self._last_updated(r, clause)
        param = clause.param
        modifier = clause.modifier
        pid = param.param_id
        if modifier == "missing":
            table = self._table(param.index_table if modifier != "identifier" else "token")
            exists = self._member(r, select(table.c.resource_pk).where(self._pid(table, pid)))
            return not_(exists) if clause.values[0].raw == "true" else exists
        if modifier == "identifier":
            cond = or_(*(self._token_value(v) for v in clause.values))
            return self._member(r, select(token_index.c.resource_pk).where(self._pid(token_index, pid), cond))
        kind = param.type
        if kind == "token":
            if modifier == "text":
                cond = or_(*(_prefix_range(token_index.c.text, normalise(v.raw)) for v in clause.values))
            elif modifier == "of-type":  # type-system|type-code|value, indexed as system "type-system|type-code"
                cond = or_(*(and_(token_index.c.system == f"{v.system}|{(v.code or '').partition('|')[0]}",
                                  token_index.c.code == (v.code or "").partition("|")[2])
                             for v in clause.values))
            else:
                cond = or_(*(self._token_value(v) for v in clause.values))
            sub = select(token_index.c.resource_pk).where(self._pid(token_index, pid), cond)
            return not_(self._member(r, sub)) if modifier == "not" else self._member(r, sub)
        if kind == "string":
            cond = or_(*(self._string_value(v, modifier) for v in clause.values))
            return self._member(r, select(string_index.c.resource_pk).where(self._pid(string_index, pid), cond))
        if kind == "date":
            return self._date(r, clause)
        if kind in ("number", "quantity"):
            cond = or_(*(self._number_value(v, kind == "quantity") for v in clause.values))
            return self._member(r, select(number_index.c.resource_pk).where(self._pid(number_index, pid), cond))
        if kind == "reference":
            cond = or_(*(self._reference_value(v) for v in clause.values))
            return self._member(r,
                select(reference_index.c.resource_pk).where(self._pid(reference_index, pid), cond)
            )
        if kind == "uri":
            cond = or_(*(self._uri_value(v, modifier) for v in clause.values))
            return self._member(r, select(uri_index.c.resource_pk).where(self._pid(uri_index, pid), cond))
        raise BadRequest(f"search parameter {param.code!r} of type {kind} is not supported")

    def _date(self, r: FromClause, clause: Clause) -> ColumnElement[bool]:
        """A date clause: one index row meets every value list (see server/search/ranges.py).

        When the parameter's values have bounded widths, the rows are read from a bounded
        stretch of the ``(param_id, low)`` index (plus a few exact ``low`` points), the exact
        comparisons applied on top; a probe of one resource needs no such help."""
        assert clause.param is not None
        d = date_index.c
        groups = [clause.values, *clause.same_row]
        code, pid = clause.param.code, clause.param.param_id

        def matching(low: Any, high: Any) -> Any:
            conds = [or_(*(self._date_value(v, low, high, code) for v in g)) for g in groups]
            return select(d.resource_pk).where(self._pid(date_index, pid), *conds)

        base = matching(d.low, d.high)
        narrow = self.narrow_dates and not self.correlated and shape_of(clause).bounded
        access = low_access(groups) if narrow else None
        if access is None:
            return self._member(r, base)
        stretch = base.where(d.low <= access.upper)
        if access.lower is not None:
            stretch = stretch.where(d.low >= access.lower)
        if not access.points:
            return self._member(r, stretch)
        # the points lie below the stretch, so no two parts share a row; at a point the
        # comparisons read "+ 0", or SQLite would walk their range of low or high instead
        points = matching(d.low + 0, d.high + 0).where(d.low.in_(access.points))
        return self._member(r, union_all(stretch, points))

    @staticmethod
    def _table(kind: str) -> Any:
        return {
            "token": token_index, "string": string_index, "date": date_index, "number": number_index,
            "reference": reference_index, "uri": uri_index,
        }[kind]

    # -- special parameters ----------------------------------------------------------------
    def _id(self, r: FromClause, clause: Clause) -> ColumnElement[bool]:
        ids = [v.code or v.raw for v in clause.values]
        cond = r.c.id.in_(ids)
        return not_(cond) if clause.modifier == "not" else cond

    def _last_updated(self, r: FromClause, clause: Clause) -> ColumnElement[bool]:
        return or_(*(self._date_value(v, r.c.last_updated, r.c.last_updated, "_lastUpdated") for v in clause.values))

    # -- values ------------------------------------------------------------------------------
    @staticmethod
    def _token_value(v: Value) -> ColumnElement[bool]:
        t = token_index.c
        if v.has_bar:
            if v.system is None and v.code is not None:  # |code: no system
                return and_(t.code == v.code, t.system.is_(None))
            if v.code is None:  # system|
                return t.system == v.system
            return and_(t.code == v.code, t.system == v.system)
        return t.code == v.code

    @staticmethod
    def _string_value(v: Value, modifier: str | None) -> ColumnElement[bool]:
        s = string_index.c
        if modifier == "exact":
            return s.value == v.raw
        norm = normalise(v.raw)
        if modifier == "contains":
            return s.norm.like(f"%{_like_escape(norm)}%", escape="\\")
        return _prefix_range(s.norm, norm)

    @staticmethod
    def _date_value(v: Value, low: Any, high: Any, code: str) -> ColumnElement[bool]:
        try:
            plo, phi = parse_range(v.raw)
        except DateFormatError as exc:
            raise BadRequest(f"search parameter {code}: {exc}") from None
        return _compare_ranges(v.prefix, low, high, plo, phi, approx=_approx_margin(plo, phi))

    @staticmethod
    def _number_value(v: Value, quantity: bool) -> ColumnElement[bool]:
        n = number_index.c
        try:
            number = float(v.raw)
        except ValueError:
            raise BadRequest(f"{v.raw!r} is not a number") from None
        half = _half_precision(v.raw)
        cond = _compare_ranges(v.prefix, n.low, n.high, number - half, number + half, approx=abs(number) * 0.1)
        if quantity and v.code:
            cond = and_(cond, n.code == v.code)
        if quantity and v.system:
            cond = and_(cond, n.system == v.system)
        return cond

    def _reference_value(self, v: Value) -> ColumnElement[bool]:
        ref = reference_index.c
        raw = v.raw
        if self.base_url and raw.startswith(self.base_url + "/"):
            raw = raw[len(self.base_url) + 1 :]
        if "://" in raw or raw.startswith("urn:"):
            if "|" in raw:
                return ref.url == raw
            return or_(ref.url == raw, ref.url.like(_like_escape(raw) + "|%", escape="\\"))
        parts = raw.split("/")
        if len(parts) >= 2:
            return and_(ref.target_id == parts[-1], ref.target_type == parts[-2])
        return ref.target_id == raw

    @staticmethod
    def _uri_value(v: Value, modifier: str | None) -> ColumnElement[bool]:
        """Exact, or by whole path segments (``:below`` children, ``:above`` parents), case
        sensitive on both stores (SQLite's LIKE is not, so no LIKE here)."""
        u = uri_index.c
        raw = v.raw.rstrip("/")
        if modifier == "below":
            return or_(u.value == raw, _prefix_range(u.value, raw + "/"))
        if modifier == "above":
            scheme, sep, rest = raw.partition("://")
            segments = (rest if sep else raw).split("/")
            head = scheme + sep if sep else ""
            parents = [head + "/".join(segments[:n]) for n in range(len(segments), 0, -1)]
            return u.value.in_(parents)
        return u.value == v.raw

    # -- joins through references -----------------------------------------------------------
    def _chain(self, r: FromClause, clause: Clause) -> ColumnElement[bool]:
        assert clause.param is not None
        alternatives = []
        for target_type, inner in clause.chain:
            t = resource.alias()
            sub = (
                select(reference_index.c.resource_pk)
                .join(t, and_(t.c.resource_type == reference_index.c.target_type,
                              t.c.id == reference_index.c.target_id))
                .where(
                    self._pid(reference_index, clause.param.param_id),
                    reference_index.c.target_type == target_type,
                    t.c.deleted == false(),
                    self.clause(target_type, t, inner),
                    self.visible(target_type, t),
                )
            )
            alternatives.append(self._member(r, sub))
        return or_(*alternatives) if alternatives else false()

    def _has(self, rtype: str, r: FromClause, clause: Clause) -> ColumnElement[bool]:
        assert clause.has is not None
        source_type, ref_param, inner = clause.has
        s = resource.alias()
        sub = (
            select(reference_index.c.target_id)
            .join(s, s.c.pk == reference_index.c.resource_pk)
            .where(
                reference_index.c.param_id == ref_param.param_id,  # uncorrelated: r.id IN (...)
                reference_index.c.target_type == rtype,
                s.c.deleted == false(),
                self.clause(source_type, s, inner),
                self.visible(source_type, s),
            )
        )
        return r.c.id.in_(sub)


def _half_precision(raw: str) -> float:
    """Half of the last significant digit: ``100`` means [99.5, 100.5), ``1e2`` too."""
    text = raw.lower().lstrip("+-")
    mantissa, _, exponent = text.partition("e")
    exp = int(exponent) if exponent else 0
    decimals = len(mantissa.partition(".")[2]) if "." in mantissa else 0
    return 0.5 * math.pow(10, exp - decimals)


def _approx_margin(plo: int, phi: int) -> int:
    now = to_micros(datetime.now(UTC))
    gap = abs(now - plo)
    return max(int(gap * 0.1), phi - plo + 1)


def _compare_ranges(prefix: str, low: Any, high: Any, plo: Any, phi: Any, approx: Any) -> ColumnElement[bool]:
    """The R4 prefix rules, comparing the indexed range [low, high] with the value's [plo, phi]."""
    if prefix == "eq":
        return and_(low >= plo, high <= phi)
    if prefix == "ne":
        return or_(low < plo, high > phi)
    if prefix == "gt":
        return high > phi
    if prefix == "lt":
        return low < plo
    if prefix == "ge":
        return high >= plo
    if prefix == "le":
        return low <= phi
    if prefix == "sa":
        return low > phi
    if prefix == "eb":
        return high < plo
    if prefix == "ap":
        return and_(low <= phi + approx, high >= plo - approx)
    raise BadRequest(f"unknown search prefix {prefix!r}")


def always() -> ColumnElement[bool]:
    return true()
