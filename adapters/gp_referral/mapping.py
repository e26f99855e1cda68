"""The mapping engine: walks a versioned JSON template (``mappings/gp_referral/<version>/``)
over a parsed message. It knows HL7 paths, tables and FHIR shapes, never a particular field:
a new field or code is a change in the mapping's data.

Template nodes are plain JSON; a dict with a ``$``-key is an instruction:

``{"$": "PID-7", "as": "date"}``  a field (``SEG-field[.component[.sub]]``) of the segment
being mapped, or of the message's first segment of that name; ``as`` converts, ``table``
looks the code up, ``required`` / ``check`` report a located problem.
``{"$c": 2}``  a component of the current repetition (inside ``$each``/``$pick``).
``{"$each": "PID-5", "where": {"5": "NH"}, "value": ...}``  one value per repetition.
``{"$all": "NTE", "value": ...}``  one value per segment of that name.
``{"$pick": ...}``  the first repetition that matches, as one value.
``{"$type": "XPN"}``  the data-type template of that name, on the current repetition.
``{"$ref": key}`` / ``{"$refs": key}``  reference(s) to resources built under that key.
``{"$first": [...]}``, ``{"$format": "{0}-{1}", "args": [...]}``, ``{"$when": {...}, "value": ...}``,
``{"$context": name}``, ``{"$triage": priority-node}``.
Empty results vanish, and so does an object none of whose instructions gave a value.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, time
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson

from adapters.common.dates import BadDate, to_date, to_datetime
from adapters.common.identity import CHECKS
from adapters.common.result import Problem
from adapters.common.triage import triage_due
from adapters.gp_referral.hl7 import Message, Segment

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings" / "gp_referral"
_PATH = re.compile(r"^([A-Z][A-Z0-9]{2})-(\d+)(?:\.(\d+))?(?:\.(\d+))?$")


@dataclass
class Mapping:
    version: str
    spec: dict[str, Any]
    tables: dict[str, dict[str, str]]
    datatypes: dict[str, Any]

    @property
    def accepts(self) -> dict[str, Any]:
        return self.spec["accepts"]


@lru_cache(maxsize=8)
def load(version: str = "v1", root: str | None = None) -> Mapping:
    folder = Path(root) if root else MAPPINGS / version
    spec = orjson.loads((folder / "message.json").read_bytes())
    tables = orjson.loads((folder / spec.get("tables", "tables.json")).read_bytes())
    datatypes = orjson.loads((folder / "datatypes.json").read_bytes())
    return Mapping(spec["version"], spec, tables, datatypes)


def latest_version() -> str:
    return sorted((p.name for p in MAPPINGS.iterdir() if (p / "message.json").exists()),
                  key=lambda v: int(v.lstrip("v")))[-1]


@lru_cache(maxsize=4096)
def _path(path: str) -> tuple[str, int, int, int]:
    m = _PATH.match(path)
    if not m:
        raise ValueError(f"mapping path {path!r} is not SEG-field[.component[.sub]]")
    seg, f, c, s = m.groups()
    return seg, int(f), int(c or 1), int(s or 1)


@dataclass
class Run:
    """One message's mapping run: where it is, what it built, what went wrong."""

    mapping: Mapping
    message: Message
    context: dict[str, Any]
    refs: dict[str, list[str]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    segment: Segment | None = None
    rep: str | None = None
    hits: int = 0

    def seg(self, name: str) -> Segment | None:
        if self.segment is not None and self.segment.name == name:
            return self.segment
        return self.message.first(name)

    def problem(self, reason: str, seg: Segment | None, name: str, f: int, c: int = 0, code: str = "207") -> None:
        seq = sum(1 for s in self.message.segments[: seg.index] if s.name == name) if seg else 1
        p = Problem(reason, name, seq or 1, f, c, code)
        if p not in self.problems:
            self.problems.append(p)


def _dynamic(node: Any) -> bool:
    if isinstance(node, dict):
        return any(k.startswith("$") for k in node) or any(_dynamic(v) for v in node.values())
    if isinstance(node, list):
        return any(_dynamic(v) for v in node)
    return False


_EXPANDS = ("$each", "$all", "$refs")
_LEAF_OPTIONS = ("required", "check", "table", "as", "default")
Compiled = Callable[[Run], Any]
#: template object id -> (the object, so that its id cannot be reused; its compiled form)
_COMPILED: dict[int, tuple[Any, Compiled]] = {}


def evaluate(run: Run, node: Any) -> Any:
    return compiled(node)(run)


def compiled(node: Any) -> Compiled:
    """The template node as a function of the run, built once per node: the walk over the
    template's JSON is done at load time, not for every message."""
    found = _COMPILED.get(id(node))
    if found is None or found[0] is not node:
        found = (node, _compile(node))
        _COMPILED[id(node)] = found
    return found[1]


def _compile(node: Any) -> Compiled:
    if isinstance(node, list):
        return _compile_list(node)
    if not isinstance(node, dict):
        return lambda run: node
    if any(k.startswith("$") for k in node):
        return _compile_instruction(node)
    dynamic = _dynamic(node)
    parts = [(k, compiled(v) if isinstance(v, (dict, list)) else None, v) for k, v in node.items()]

    def obj(run: Run) -> Any:
        before = run.hits
        result = {}
        for k, fn, const in parts:
            value = fn(run) if fn is not None else const
            if value is not None:
                result[k] = value
        if not result or (dynamic and run.hits == before):
            return None
        return result
    return obj


def _compile_list(node: list[Any]) -> Compiled:
    items = [(isinstance(i, dict) and any(k in i for k in _EXPANDS), i, compiled(i) if not (
        isinstance(i, dict) and any(k in i for k in _EXPANDS)) else None) for i in node]

    def many(run: Run) -> Any:
        out: list[Any] = []
        for expands, item, fn in items:
            if expands:
                out.extend(_expand(run, item))
            else:
                v = fn(run)  # type: ignore[misc]
                if v is not None:
                    out.append(v)
        return out or None
    return many


def _compile_instruction(node: dict[str, Any]) -> Compiled:
    simple = not any(k in node for k in _LEAF_OPTIONS)
    if "$" in node:
        name, f, c, sub = _path(node["$"])

        def field_value(run: Run) -> Any:
            seg = run.seg(name)
            value = run.message.get_in(seg, f, c, sub) if seg is not None else ""
            if simple and value and value != '""':
                run.hits += 1
                return value
            return _leaf(run, value, node, seg, name, f, c)
        return field_value
    if "$c" in node:
        comp = int(node["$c"])

        def component(run: Run) -> Any:
            value = run.message.component_of(run.rep or "", comp)
            if simple and value and value != '""':
                run.hits += 1
                return value
            seg = run.segment
            return _leaf(run, value, node, seg, seg.name if seg else "", 0, comp)
        return component
    return lambda run: _instruction(run, node)


def _expand(run: Run, node: dict[str, Any]) -> list[Any]:
    if "$refs" in node:
        return [{"reference": u} for u in run.refs.get(node["$refs"], [])]
    out = []
    if "$all" in node:
        saved = run.segment
        for seg in run.message.all(node["$all"]):
            run.segment = seg
            v = evaluate(run, node["value"])
            if v is not None:
                out.append(v)
        run.segment = saved
        return out
    for rep in _repetitions(run, node):
        saved_rep = run.rep
        run.rep = rep
        v = evaluate(run, node["value"])
        run.rep = saved_rep
        if v is not None:
            out.append(v)
    return out


def _repetitions(run: Run, node: dict[str, Any]) -> list[str]:
    seg_name, f, _, _ = _path(node.get("$each") or node["$pick"])
    seg = run.seg(seg_name)
    if seg is None:
        return []
    reps = run.message.repetitions(seg, f)
    where = node.get("where")
    if where:
        reps = [r for r in reps if all(run.message.component_of(r, int(c)) == v for c, v in where.items())]
    return reps


def _leaf(run: Run, value: str, node: dict[str, Any], seg: Segment | None, name: str, f: int, c: int) -> Any:
    if value == "" or value == '""':
        if node.get("required"):
            run.problem("required field is missing", seg, name, f, c if c > 1 else 0, "101")
        return node.get("default")
    check = node.get("check")
    if check:
        reason = CHECKS[check](value)
        if reason:
            run.problem(reason, seg, name, f, c if c > 1 else 0, "102")
            return None
    table = node.get("table")
    if table:
        found = run.mapping.tables[table].get(value)
        if found is None:
            if node.get("strict", True) and "default" not in node:
                run.problem(f"code {value!r} is not in table {table}", seg, name, f, c if c > 1 else 0, "103")
            return node.get("default")
        value = found
    kind = node.get("as")
    if kind:
        try:
            if kind == "date":
                return _hit(run, to_date(value))
            if kind == "dateTime":
                return _hit(run, to_datetime(value))
            if kind == "decimal":
                return _hit(run, float(value) if "." in value else int(value))
            if kind == "integer":
                return _hit(run, int(value))
        except (BadDate, ValueError) as exc:
            run.problem(str(exc) if isinstance(exc, BadDate) else f"{value!r} is not a number", seg, name, f,
                        c if c > 1 else 0, "102")
            return None
    return _hit(run, value)


def _hit(run: Run, value: Any) -> Any:
    run.hits += 1
    return value


def _instruction(run: Run, node: dict[str, Any]) -> Any:
    if "$" in node:
        name, f, c, s = _path(node["$"])
        seg = run.seg(name)
        value = run.message.get_in(seg, f, c, s) if seg is not None else ""
        return _leaf(run, value, node, seg, name, f, c)
    if "$c" in node:
        value = run.message.component_of(run.rep or "", int(node["$c"]))
        seg = run.segment
        return _leaf(run, value, node, seg, seg.name if seg else "", 0, int(node["$c"]))
    if "$pick" in node:
        reps = _repetitions(run, node)
        name, f, _, _ = _path(node["$pick"])
        value = run.message.component_of(reps[0], int(node.get("component", 1))) if reps else ""
        return _leaf(run, value, node, run.seg(name), name, f, 0)
    if "$type" in node:
        return evaluate(run, run.mapping.datatypes[node["$type"]])
    if "$ref" in node:
        found = run.refs.get(node["$ref"])
        return _hit(run, {"reference": found[0]}) if found else None
    if "$first" in node:
        for option in node["$first"]:
            v = evaluate(run, option)
            if v is not None:
                return v
        return None
    if "$format" in node:
        args = [evaluate(run, a) for a in node["args"]]
        if any(a is None for a in args):
            return None
        return _hit(run, node["$format"].format(*args))
    if "$when" in node:
        return evaluate(run, node["value"]) if _matches(run, node["$when"]) else None
    if "$context" in node:
        found = run.context.get(node["$context"])
        return _leaf(run, str(found), node, None, "", 0, 0) if found else node.get("default")
    if "$triage" in node:
        return _hit(run, _triage(run, evaluate(run, node["$triage"])))
    if "$each" in node or "$all" in node or "$refs" in node:
        items = _expand(run, node)
        return items[0] if items else None
    raise ValueError(f"unknown mapping instruction {sorted(node)}")


def _matches(run: Run, cond: dict[str, Any]) -> bool:
    for path, want in cond.items():
        name, f, c, s = _path(path)
        seg = run.seg(name)
        got = run.message.get_in(seg, f, c, s) if seg is not None else ""
        if got not in (want if isinstance(want, list) else [want]):
            return False
    return True


def _triage(run: Run, priority: str | None) -> str | None:
    received: datetime | None = run.context.get("received")
    if received is None:
        return None
    t = run.mapping.spec["triage"]
    hh, mm = (int(x) for x in t.get("working_day_ends", "17:00").split(":"))
    due = triage_due(received, (priority or "routine") in t["urgent_priorities"], urgent_hours=t["urgent_hours"],
                     timezone=t["timezone"], day_ends=time(hh, mm), subdivision=t["calendar"])
    return due.isoformat(timespec="seconds")


def segments_for(run: Run, spec: dict[str, Any]) -> list[Segment]:
    """The segments a resource spec is built from (after its ``when`` / ``unless``)."""
    found = []
    for seg in run.message.all(spec["segment"]):
        run.segment = seg
        if spec.get("when") and not _matches(run, spec["when"]):
            continue
        if spec.get("unless") and _matches(run, spec["unless"]):
            continue
        found.append(seg)
    run.segment = None
    return found
