"""Date clauses read as one range of the date index.

A resource's value of a date parameter is indexed as ``[low, high]``, and each search
prefix compares that range with the searched one. Two facts, both read from the R4
definitions rather than listed by hand, let the store answer a date range from a short
stretch of the ``(param_id, low)`` index instead of a long walk of either index:

* **Single-valued parameters.** When the parameter's expression reaches one element of
  cardinality at most 1 at every step (``Patient.birthDate``), and its types give one range
  per value (not Timing), a resource has at most one index row for it. Then
  ``birthdate=ge1980-03-01&birthdate=lt1980-04-01`` asks for one row meeting both bounds,
  and the two clauses fold into one (:func:`fold_date_clauses`). For a parameter of
  several values, each bound may be met by a different value, so its clauses stay apart.
* **Bounded widths.** A date, dateTime or instant value (not a Period, whose end may be
  open, nor a Timing) covers a year, a month, a day (read in Europe/London when it has no
  time) or at most two hours (an hour's precision across the autumn clock change). So a
  row whose ``high`` reaches an instant ``t`` either starts at or after ``t``, or started
  just before it (within those two hours), or starts exactly at the London year, month or
  day that holds ``t``. That turns "``high >= t``" into a bounded set of ``low`` values
  (:func:`low_access`), which the ``(param_id, low)`` index serves.

The bounds derived here are only ever added to the exact per-row comparison, never put in
its place: they keep every row the comparison keeps, so the answer is the same and only
the amount of index read changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson

from carebridge import paths
from server.definitions.fhirpath import split_union
from server.fhir.dates import LONDON, DateFormatError, from_micros, parse_range
from server.search.query import Clause, Value

_HOUR = 3_600_000_000
#: how far a time-precision value may start before an instant it covers: an hour's
#: precision ("T01") lasts two hours on the autumn clock change; one more for safety
TIME_REACH = 3 * _HOUR
#: how far ``low`` may exceed ``high`` (a time inside the spring clock change's gap, such
#: as "01:59" on that day, ends before it starts by up to an hour)
NEGATIVE_WIDTH = 2 * _HOUR
#: types that give one index row per value, and of those the ones of bounded width
_ONE_ROW = frozenset({"date", "dateTime", "instant", "Period", "string"})
_BOUNDED = frozenset({"date", "dateTime", "instant", "string"})
_CAST_SUFFIX = " as "


@dataclass(frozen=True)
class DateShape:
    #: a resource has at most one index row for the parameter
    single: bool
    #: every value is a date, dateTime or instant (no Period or Timing)
    bounded: bool


UNKNOWN = DateShape(single=False, bounded=False)


@cache
def _elements() -> dict[str, Any]:
    path = paths.R4_DEFINITIONS / "element-definitions.json"
    return orjson.loads(path.read_bytes()) if path.exists() else {}


def _path_steps(part: str) -> tuple[str, list[str], str | None] | None:
    """``(head, element names, cast)`` of a plain path such as ``(Goal.start.ofType(date))``."""
    part = part.strip()
    while part.startswith("(") and part.endswith(")"):
        part = part[1:-1].strip()
    cast = None
    if _CAST_SUFFIX in part:
        part, _, cast = part.partition(_CAST_SUFFIX)
        part, cast = part.strip().strip("()"), cast.strip()
    for marker in (".ofType(", ".as("):
        if part.endswith(")") and marker in part:
            part, _, rest = part.partition(marker)
            cast = rest[:-1]
    names = part.split(".")
    if any(not n.isidentifier() for n in names) or len(names) < 2:
        return None  # where(), extension(), resolve(): not a plain path
    return names[0], names[1:], cast


def _element(rtype: str, names: list[str]) -> tuple[bool, list[str]] | None:
    """(every step has max 1, the final element's types) for a path of element names."""
    data = _elements()
    structure = (data.get("resources") or {}).get(rtype)
    datatypes = data.get("datatypes") or {}
    if structure is None:
        return None
    single, prefix, types = True, "", []
    for name in names:
        key = prefix + name
        el = structure.get(key) or structure.get(key + "[x]")
        if not isinstance(el, dict):
            return None
        single = single and el.get("max") == "1"
        types = list(el.get("types") or [])
        if len(types) == 1 and types[0] in datatypes and types[0] not in ("Element", "BackboneElement"):
            structure, prefix = datatypes[types[0]], ""
        else:
            prefix = key + "."
    return single, types


@cache
def date_shape(rtype: str, expression: str | None) -> DateShape:
    """What the definitions say about a date parameter's values on ``rtype``."""
    if not expression:
        return UNKNOWN
    found: list[tuple[tuple[str, ...], bool, list[str]]] = []
    for part in split_union(expression):
        steps = _path_steps(part)
        if steps is None:
            if part.lstrip("( ").startswith(rtype + "."):
                return UNKNOWN  # an expression on this type that is not a plain path
            continue
        head, names, cast = steps
        if head != rtype:
            continue
        el = _element(rtype, names)
        if el is None:
            return UNKNOWN
        single, types = el
        if cast is not None:
            types = [t for t in types if t == cast]
        found.append((tuple(names), single, types))
    if not found:
        return UNKNOWN
    kinds = {t for _, _, ts in found for t in ts}
    # several parts are still one value when each casts the same choice element
    one_element = len({names for names, _, _ in found}) == 1
    single = one_element and all(s for _, s, _ in found) and kinds <= _ONE_ROW
    return DateShape(single=single, bounded=bool(kinds) and kinds <= _BOUNDED)


def shape_of(clause: Clause) -> DateShape:
    p = clause.param
    if p is None or p.type != "date":
        return UNKNOWN
    return date_shape(p.resource_type, p.expression)


def fold_date_clauses(clauses: list[Clause]) -> list[Clause]:
    """The clauses with those of each single-valued date parameter folded into one, whose
    values (OR-ed, as ever) and ``same_row`` value lists must all hold on one index row."""
    out: list[Clause] = []
    first: dict[int, Clause] = {}
    for c in clauses:
        p = c.param
        if (p is None or p.type != "date" or c.modifier is not None or c.chain or c.has is not None
                or not c.values or not shape_of(c).single):
            out.append(c)
            continue
        held = first.get(p.param_id)
        if held is None:
            held = Clause(c.name, p, None, list(c.values), same_row=list(c.same_row))
            first[p.param_id] = held
            out.append(held)
        else:
            held.same_row.extend([list(c.values), *c.same_row])
    return out


@dataclass
class _Bounds:
    """Inclusive bounds on a row's ``low`` and ``high`` (None: unbounded)."""

    lo_min: int | None = None
    lo_max: int | None = None
    hi_min: int | None = None
    hi_max: int | None = None

    def meet(self, other: _Bounds) -> _Bounds:
        """Both hold."""
        return _Bounds(_pick(max, self.lo_min, other.lo_min), _pick(min, self.lo_max, other.lo_max),
                       _pick(max, self.hi_min, other.hi_min), _pick(min, self.hi_max, other.hi_max))

    def join(self, other: _Bounds) -> _Bounds:
        """Either holds: the loosest of each bound, unbounded when either is."""
        def loose(f: Any, a: int | None, b: int | None) -> int | None:
            return None if a is None or b is None else f(a, b)
        return _Bounds(loose(min, self.lo_min, other.lo_min), loose(max, self.lo_max, other.lo_max),
                       loose(min, self.hi_min, other.hi_min), loose(max, self.hi_max, other.hi_max))


def _pick(f: Any, a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else f(a, b)


def _value_bounds(v: Value) -> _Bounds:
    """What a value's comparison (see ``sql._compare_ranges``) implies for the row."""
    try:
        plo, phi = parse_range(v.raw)
    except DateFormatError:
        return _Bounds()
    return {
        "eq": _Bounds(lo_min=plo, hi_max=phi),
        "gt": _Bounds(hi_min=phi + 1),
        "lt": _Bounds(lo_max=plo - 1),
        "ge": _Bounds(hi_min=plo),
        "le": _Bounds(lo_max=phi),
        "sa": _Bounds(lo_min=phi + 1),
        "eb": _Bounds(hi_max=plo - 1),
    }.get(v.prefix, _Bounds())  # ne, ap: nothing to narrow by


def _starts_holding(t: int) -> list[int]:
    """The ``low`` of the London year, month and day that hold the instant ``t``: where a
    date-only value covering ``t`` can start."""
    try:
        local = from_micros(t).astimezone(LONDON)
        texts = (f"{local.year:04d}", f"{local.year:04d}-{local.month:02d}",
                 f"{local.year:04d}-{local.month:02d}-{local.day:02d}")
        return sorted({parse_range(x)[0] for x in texts})
    except (OverflowError, ValueError):
        return []


@dataclass(frozen=True)
class LowAccess:
    """Rows with ``low`` in ``[lower, upper]`` or equal to one of ``points`` (all below ``lower``)."""

    lower: int | None
    upper: int
    points: tuple[int, ...] = ()


def low_access(groups: list[list[Value]]) -> LowAccess | None:
    """A bounded set of ``low`` values that holds every row meeting all ``groups`` (each a list
    of OR-ed values) of a bounded-width parameter; None when nothing narrower than the plain
    comparisons follows from them."""
    b = _Bounds()
    for group in groups:
        g: _Bounds | None = None
        for v in group:
            vb = _value_bounds(v)
            g = vb if g is None else g.join(vb)
        if g is not None:
            b = b.meet(g)
    upper = b.lo_max
    if b.hi_max is not None:  # low <= high, but for the spring gap's backward ranges
        upper = _pick(min, upper, b.hi_max + NEGATIVE_WIDTH)
    if upper is None:
        return None
    if b.hi_min is not None and (b.lo_min is None or b.lo_min < b.hi_min):
        t = b.hi_min
        starts = _starts_holding(t)
        if not starts:
            return None
        lower = t - TIME_REACH if b.lo_min is None else max(b.lo_min, t - TIME_REACH)
        points = tuple(p for p in starts if p < lower and (b.lo_min is None or p >= b.lo_min) and p <= upper)
        return LowAccess(lower, upper, points)
    if b.lo_min is None:
        return None  # only an upper bound: the plain comparison says as much
    return LowAccess(b.lo_min, upper)

