"""Parsing FHIR search parameters into a structure the SQL compiler walks.

Errors are located: a bad value names the parameter and says what was expected.
Unknown parameters are collected, not fatal, unless the client asks for
``Prefer: handling=strict``; the self link shows only what was applied.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from server.definitions.search_parameters import SearchParam, SearchParameterRegistry
from server.fhir.errors import BadRequest

PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
RESULT_PARAMS = frozenset({
    "_count", "_sort", "_include", "_revinclude", "_summary", "_elements", "_total", "_contained",
    "_containedType", "_format", "_pretty", "_page", "_type",
})
MODIFIERS = {
    "token": {"not", "text", "missing", "of-type", "in", "not-in", "above", "below"},
    "string": {"exact", "contains", "missing"},
    "date": {"missing"},
    "number": {"missing"},
    "quantity": {"missing"},
    "reference": {"missing", "identifier"},  # plus :Type, handled apart
    "uri": {"missing", "below", "above"},
    "composite": {"missing"},
}
UNSUPPORTED_MODIFIERS = {"in", "not-in", "above", "below"}
SUMMARY_VALUES = {"true", "false", "text", "data", "count"}
TOTAL_VALUES = {"none", "estimate", "accurate"}


@dataclass(frozen=True)
class Value:
    """One of the OR-ed values of a clause, already split by the parameter's type."""

    raw: str
    prefix: str = "eq"
    system: str | None = None
    code: str | None = None
    #: whether ``system|`` was written (so that a missing system means "no system")
    has_bar: bool = False


@dataclass
class Clause:
    """``name[:modifier]=v1,v2`` for one parameter (values OR-ed; clauses AND-ed)."""

    name: str
    param: SearchParam | None
    modifier: str | None
    values: list[Value]
    #: for a chain (``subject:Patient.name=x``): the parameter on the target types
    chain: list[tuple[str, Clause]] = field(default_factory=list)
    #: for ``_has:Type:param:...``: source type, reference parameter, inner clause
    has: tuple[str, SearchParam, Clause] | None = None
    #: for a single-valued date parameter: further OR-ed value lists that the same index
    #: row must meet too (``birthdate=ge...&birthdate=lt...`` folded into one clause)
    same_row: list[list[Value]] = field(default_factory=list)

    def text(self) -> str:
        return self.name + (f":{self.modifier}" if self.modifier else "")


@dataclass(frozen=True)
class Include:
    source_type: str
    param: SearchParam | None  # None for "*"
    target_type: str | None
    iterate: bool = False
    reverse: bool = False

    def text(self) -> str:
        code = self.param.code if self.param else "*"
        return f"{self.source_type}:{code}" + (f":{self.target_type}" if self.target_type else "")


@dataclass
class SearchQuery:
    resource_types: list[str]
    #: the AND-ed clauses, per resource type searched (parameter ids differ per type)
    clauses_by_type: dict[str, list[Clause]] = field(default_factory=dict)
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (code, descending)
    count: int = 50
    includes: list[Include] = field(default_factory=list)
    summary: str | None = None
    elements: list[str] = field(default_factory=list)
    total: str | None = None
    ignored: list[str] = field(default_factory=list)
    #: the parameters as applied, for the self link and for paging
    applied: list[tuple[str, str]] = field(default_factory=list)

    @property
    def resource_type(self) -> str:
        return self.resource_types[0]

    @property
    def clauses(self) -> list[Clause]:
        return self.clauses_by_type.get(self.resource_type, [])


def split_values(text: str) -> list[str]:
    """Split on commas not escaped with a backslash, and unescape ``\\,`` ``\\$`` ``\\|``."""
    parts = re.split(r"(?<!\\),", text)
    return [p.replace("\\,", ",") for p in parts]


def _unescape(text: str) -> str:
    return text.replace("\\|", "|").replace("\\$", "$").replace("\\\\", "\\")


def _split_bar(text: str) -> tuple[str | None, str, bool]:
    m = re.search(r"(?<!\\)\|", text)
    if not m:
        return None, _unescape(text), False
    return _unescape(text[: m.start()]), _unescape(text[m.end() :]), True


def parse_value(param_type: str, raw: str, name: str, modifier: str | None) -> Value:
    if modifier == "missing":
        if raw not in ("true", "false"):
            raise BadRequest(f"search parameter {name}:missing takes true or false, not {raw!r}")
        return Value(raw)
    if param_type == "token" and modifier != "text":
        system, code, bar = _split_bar(raw)
        return Value(raw, system=system or None, code=code or None, has_bar=bar)
    if param_type in ("date", "number", "quantity"):
        prefix = "eq"
        if len(raw) > 2 and raw[:2] in PREFIXES and not raw[2].isalpha():
            prefix, raw_value = raw[:2], raw[2:]
        else:
            raw_value = raw
        if param_type == "quantity":
            number, _, rest = raw_value.partition("|")
            system, _, code = rest.partition("|")
            return Value(number, prefix=prefix, system=system or None, code=code or None)
        return Value(raw_value, prefix=prefix)
    return Value(_unescape(raw))


class QueryParser:
    """Turns ``[(name, value), ...]`` into a :class:`SearchQuery` for one or more types."""

    def __init__(self, registry: SearchParameterRegistry, default_count: int = 50, max_count: int = 1000):
        self.registry = registry
        self.default_count = default_count
        self.max_count = max_count

    def parse(
        self, resource_types: list[str], params: list[tuple[str, str]], strict: bool = False
    ) -> SearchQuery:
        query = SearchQuery(resource_types=resource_types, count=self.default_count)
        query.clauses_by_type = {t: [] for t in resource_types}
        for name, value in params:
            base, _, mod = name.partition(":")
            if base in ("_include", "_revinclude") and mod in ("iterate", "recurse"):
                # R4 writes the modifier on the name: _include:iterate=Type:param[:target]
                query.includes.append(self._include(value, reverse=base == "_revinclude", iterate=True))
                query.applied.append((name, value))
                continue
            if name in RESULT_PARAMS:
                self._result_param(query, name, value)
                continue
            clauses = [self._clause([t], name, value, strict) for t in resource_types]
            if any(c is None for c in clauses):
                if strict:
                    raise BadRequest(f"unknown search parameter {name!r} for {' or '.join(resource_types)}")
                query.ignored.append(name)
                continue
            for t, c in zip(resource_types, clauses, strict=True):
                assert c is not None
                query.clauses_by_type[t].append(c)
            query.applied.append((name, value))
        return query

    # -- result parameters -------------------------------------------------------------
    def _result_param(self, query: SearchQuery, name: str, value: str) -> None:
        if name == "_count":
            if not value.isdigit():
                raise BadRequest(f"_count must be a whole number, not {value!r}")
            query.count = min(int(value), self.max_count)
        elif name == "_sort":
            for item in value.split(","):
                item = item.strip()
                desc = item.startswith("-")
                code = item[1:] if desc else item
                if code not in ("_id", "_lastUpdated") and not all(
                    self.registry.get(t, code) for t in query.resource_types
                ):
                    raise BadRequest(f"cannot sort by unknown search parameter {code!r}")
                query.sort.append((code, desc))
        elif name in ("_include", "_revinclude"):
            query.includes.append(self._include(value, reverse=name == "_revinclude"))
        elif name == "_summary":
            if value not in SUMMARY_VALUES:
                raise BadRequest(f"_summary must be one of {sorted(SUMMARY_VALUES)}, not {value!r}")
            query.summary = None if value == "false" else value
        elif name == "_elements":
            query.elements = [e.strip() for e in value.split(",") if e.strip()]
        elif name == "_total":
            if value not in TOTAL_VALUES:
                raise BadRequest(f"_total must be one of {sorted(TOTAL_VALUES)}, not {value!r}")
            query.total = value
        elif name == "_type":
            return
        else:
            return
        query.applied.append((name, value))

    def _include(self, value: str, reverse: bool, iterate: bool = False) -> Include:
        parts = value.split(":")
        if parts[-1] in ("iterate", "recurse"):
            iterate, parts = True, parts[:-1]
        if len(parts) < 2 or len(parts) > 3:
            kind = "_revinclude" if reverse else "_include"
            raise BadRequest(f"{kind} must be Type:parameter[:target], not {value!r}")
        source, code = parts[0], parts[1]
        target = parts[2] if len(parts) == 3 else None
        if source not in self.registry.resource_types:
            raise BadRequest(f"_include names unknown resource type {source!r}")
        param = None
        if code != "*":
            param = self.registry.get(source, code)
            if param is None or param.type != "reference":
                raise BadRequest(f"{source}:{code} is not a reference search parameter")
        return Include(source, param, target, iterate, reverse)

    # -- search clauses ----------------------------------------------------------------
    def _clause(self, types: list[str], name: str, value: str, strict: bool) -> Clause | None:
        if name.startswith("_has:"):
            return self._has(types, name, value, strict)
        base, _, chain = name.partition(".")
        code, _, modifier = base.partition(":")
        if code in ("_id", "_lastUpdated"):
            ptype = "token" if code == "_id" else "date"
            values = [parse_value(ptype, v, code, modifier or None) for v in split_values(value)]
            return Clause(name, None, modifier or None, values)
        params = [self.registry.get(t, code) for t in types]
        if any(p is None for p in params):
            return None
        param = params[0]
        assert param is not None
        if param.type in ("special", "composite"):
            raise BadRequest(f"search parameter {code!r} ({param.type}) is not supported by this server")
        target_type = None
        if modifier and modifier[0].isupper():
            if param.type != "reference":
                raise BadRequest(f"modifier :{modifier} applies only to reference parameters")
            target_type, modifier = modifier, ""
        if modifier and modifier not in MODIFIERS.get(param.type, set()):
            raise BadRequest(f"modifier :{modifier} is not allowed on {param.type} parameter {code!r}")
        if modifier in UNSUPPORTED_MODIFIERS and not (param.type == "uri" and modifier in ("above", "below")):
            raise BadRequest(f"modifier :{modifier} is not supported by this server")
        if chain:
            if param.type != "reference":
                raise BadRequest(f"chaining needs a reference parameter; {code!r} is {param.type}")
            targets = [target_type] if target_type else list(param.targets)
            targets = [t for t in targets if t in self.registry.resource_types]
            chained: list[tuple[str, Clause]] = []
            for t in targets:
                inner = self._clause([t], chain, value, strict)
                if inner is not None:
                    chained.append((t, inner))
            if not chained:
                if strict:
                    raise BadRequest(f"chained parameter {chain!r} is not known on {targets}")
                return None
            return Clause(name, param, None, [], chain=chained)
        raw_values = split_values(value)
        ptype = "token" if modifier == "identifier" else param.type
        values = [parse_value(ptype, v, code, modifier or None) for v in raw_values]
        if target_type:
            values = [Value(v.raw if "/" in v.raw else f"{target_type}/{v.raw}") for v in values]
        for v in values:
            if modifier != "missing":
                self._check(param, v, code)
            if modifier == "of-type" and (v.system is None or "|" not in (v.code or "")):
                raise BadRequest(f"{code}:of-type takes type-system|type-code|value, not {v.raw!r}")
        return Clause(name, param, modifier or None, values)

    def _has(self, types: list[str], name: str, value: str, strict: bool) -> Clause | None:
        parts = name.split(":", 3)
        if len(parts) < 4:
            raise BadRequest(f"_has must be _has:Type:reference:parameter, not {name!r}")
        _, source, ref_code, rest = parts
        if source not in self.registry.resource_types:
            raise BadRequest(f"_has names unknown resource type {source!r}")
        ref = self.registry.get(source, ref_code)
        if ref is None or ref.type != "reference":
            raise BadRequest(f"_has: {source}.{ref_code} is not a reference search parameter")
        inner = self._clause([source], rest, value, strict)
        if inner is None:
            return None
        return Clause(name, None, None, [], has=(source, ref, inner))

    @staticmethod
    def _check(param: SearchParam, value: Value, code: str) -> None:
        from server.fhir.dates import DateFormatError, parse_range

        if param.type == "date" and value.prefix is not None:
            try:
                parse_range(value.raw)
            except DateFormatError as exc:
                raise BadRequest(f"search parameter {code}: {exc}") from None
        if param.type in ("number", "quantity"):
            try:
                float(value.raw)
            except ValueError:
                raise BadRequest(f"search parameter {code}: {value.raw!r} is not a number") from None


def params_from_pairs(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Drop empty values, which FHIR treats as absent."""
    return [(k, v) for k, v in pairs if v != "" or k.endswith(":missing")]


def encode_pairs(pairs: list[tuple[str, Any]]) -> str:
    from urllib.parse import urlencode

    return urlencode(pairs, safe="|:,/$*")
