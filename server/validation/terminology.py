"""ValueSet expansion and membership over the terminology this server holds.

Sources, first definition of a canonical URL wins: the product's package
(``profiles/carebridge``), the vendored UK Core (``profiles/ukcore``) and the R4 value sets
and code systems that a required or extensible binding reaches
(``profiles/r4/terminology.json``, from ``scripts/vendor_r4_validation.py``).

An expansion is computed once per value set and kept. ``compose.include`` is followed for
concept lists, whole code systems, imported value sets and the hierarchical filters
(``is-a``, ``descendent-of``, ``=`` on ``concept``) of a code system held here; ``exclude``
removes listed concepts. What cannot be settled here is said so, never guessed:

- a whole code system that is not held (SNOMED CT, LOINC, BCP-47 language tags, UCUM...)
  admits any code of that system: the code's existence in it is not checked;
- a filter on a code system that is not held (SNOMED CT ECL ``constraint``), or a
  fragment/example code system, makes that system *open*: membership of its codes is
  unknown (``None``), and the validator warns;
- a value set that is not held, or imports one that is not, cannot be expanded at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from carebridge import paths

JSON = dict[str, Any]


def strip_version(canonical: str) -> str:
    return canonical.split("|", 1)[0]


@dataclass
class CodeSystemContent:
    url: str
    complete: bool
    codes: frozenset[str]
    #: code -> its direct children (for is-a filters)
    children: dict[str, list[str]]

    def descendants(self, code: str, include_self: bool) -> set[str]:
        out: set[str] = {code} if include_self and code in self.codes else set()
        stack = list(self.children.get(code, ()))
        while stack:
            child = stack.pop()
            if child not in out:
                out.add(child)
                stack.extend(self.children.get(child, ()))
        return out


@dataclass
class Expansion:
    """What a value set admits: listed codes per system, whole systems, and open systems."""

    url: str
    codes: dict[str, set[str]] = field(default_factory=dict)
    #: systems admitted whole without a code list here (any code of the system counts)
    whole: set[str] = field(default_factory=set)
    #: systems whose membership cannot be settled here, with the reason
    open: dict[str, str] = field(default_factory=dict)
    excluded: dict[str, set[str]] = field(default_factory=dict)

    def add(self, system: str, codes: Iterable[str]) -> None:
        self.codes.setdefault(system, set()).update(codes)

    def merge(self, other: Expansion) -> None:
        for system, codes in other.codes.items():
            self.add(system, codes)
        self.whole |= other.whole
        self.open.update(other.open)
        for system, codes in other.excluded.items():
            self.excluded.setdefault(system, set()).update(codes)

    def contains(self, system: str | None, code: str) -> bool | None:
        """True or False when settled here; None when the system's membership is open."""
        if system is None:
            return self.contains_code(code)
        if code in self.excluded.get(system, ()):
            return False
        if code in self.codes.get(system, ()):
            return True
        if system in self.whole:
            return True
        if system in self.open:
            return None
        return False

    def contains_code(self, code: str) -> bool | None:
        """For ``code`` elements, which carry no system: in any system of the expansion."""
        if any(code in codes for codes in self.codes.values()) or self.whole:
            return True
        return None if self.open else False

    @property
    def systems(self) -> set[str]:
        return set(self.codes) | self.whole | set(self.open)


class ExpansionError(ValueError):
    """The value set cannot be expanded here (not held, or imports one that is not)."""


def _flatten(concepts: Iterable[JSON], parent: str | None, codes: list[str], children: dict[str, list[str]]) -> None:
    for concept in concepts:
        code = concept.get("code")
        if not isinstance(code, str):
            continue
        codes.append(code)
        if parent is not None:
            children.setdefault(parent, []).append(code)
        _flatten(concept.get("concept", []), code, codes, children)


def _subsumption(cs: JSON) -> dict[str, list[str]]:
    """Parent links given as ``subsumedBy``/``parent`` properties (v3 code systems)."""
    extra: dict[str, list[str]] = {}

    def walk(concepts: Iterable[JSON]) -> None:
        for concept in concepts:
            for prop in concept.get("property", []):
                if prop.get("code") in ("subsumedBy", "parent") and isinstance(prop.get("valueCode"), str):
                    extra.setdefault(prop["valueCode"], []).append(concept["code"])
            walk(concept.get("concept", []))

    walk(cs.get("concept", []))
    return extra


class Terminology:
    """The value sets and code systems held here, expanded on demand and cached."""

    def __init__(self, resources: Iterable[JSON]) -> None:
        self.value_sets: dict[str, JSON] = {}
        self.code_systems: dict[str, CodeSystemContent] = {}
        for resource in resources:
            url = resource.get("url")
            if not isinstance(url, str):
                continue
            if resource.get("resourceType") == "ValueSet":
                self.value_sets.setdefault(url, resource)
            elif resource.get("resourceType") == "CodeSystem" and url not in self.code_systems:
                codes: list[str] = []
                children: dict[str, list[str]] = {}
                _flatten(resource.get("concept", []), None, codes, children)
                for parent, kids in _subsumption(resource).items():
                    children.setdefault(parent, []).extend(kids)
                self.code_systems[url] = CodeSystemContent(
                    url, resource.get("content", "complete") == "complete", frozenset(codes), children)
        self._expansions: dict[str, Expansion | ExpansionError] = {}

    def has_value_set(self, url: str) -> bool:
        return strip_version(url) in self.value_sets

    def expand(self, url: str) -> Expansion:
        """The expansion of a value set; raises :class:`ExpansionError` when it cannot be made."""
        key = strip_version(url)
        found = self._expansions.get(key)
        if found is None:
            try:
                found = self._expand(key, ())
            except ExpansionError as exc:
                found = exc
            self._expansions[key] = found
        if isinstance(found, ExpansionError):
            raise found
        return found

    def _expand(self, url: str, stack: tuple[str, ...]) -> Expansion:
        if url in stack:
            raise ExpansionError(f"value set {url} imports itself")
        vs = self.value_sets.get(url)
        if vs is None:
            raise ExpansionError(f"value set {url} is not held by this server")
        compose = vs.get("compose")
        if not isinstance(compose, dict):
            raise ExpansionError(f"value set {url} has no compose to expand")
        result = Expansion(url)
        for include in compose.get("include", []):
            result.merge(self._include(include, url, (*stack, url)))
        for exclude in compose.get("exclude", []):
            self._exclude(result, exclude, url)
        return result

    def _include(self, include: JSON, url: str, stack: tuple[str, ...]) -> Expansion:
        part = Expansion(url)
        imported = [strip_version(v) for v in include.get("valueSet", [])]
        system = include.get("system")
        if imported:
            for other in imported:
                part.merge(self._expand(other, stack))
            if isinstance(system, str):  # the intersection with one system
                restricted = Expansion(url)
                restricted.merge(part)
                restricted.codes = {s: c for s, c in restricted.codes.items() if s == system}
                restricted.whole &= {system}
                restricted.open = {s: r for s, r in restricted.open.items() if s == system}
                part = restricted
            if not isinstance(system, str) and "concept" not in include:
                return part
        if not isinstance(system, str):
            return part
        held = self.code_systems.get(system)
        if "concept" in include:
            part.add(system, (c["code"] for c in include["concept"] if isinstance(c.get("code"), str)))
            return part
        filters = include.get("filter", [])
        if not filters:
            if held is None or not held.codes:
                part.whole.add(system)
            elif held.complete:
                part.add(system, held.codes)
            else:
                part.add(system, held.codes)
                part.open[system] = f"code system {system} is held only in part"
            return part
        codes = self._filtered(held, filters) if held is not None and held.codes else None
        if codes is None:
            part.open[system] = f"filter {filters!r} on {system} cannot be evaluated here"
        else:
            part.add(system, codes)
        return part

    @staticmethod
    def _filtered(held: CodeSystemContent | None, filters: list[JSON]) -> set[str] | None:
        if held is None:
            return None
        result: set[str] | None = None
        for f in filters:
            op, prop, value = f.get("op"), f.get("property"), f.get("value")
            if prop != "concept" or not isinstance(value, str):
                return None
            if op == "is-a":
                found = held.descendants(value, include_self=True)
            elif op == "descendent-of":
                found = held.descendants(value, include_self=False)
            elif op == "=":
                found = {value} if value in held.codes else set()
            elif op == "in":
                found = {v for v in value.split(",") if v in held.codes}
            else:
                return None
            result = found if result is None else result & found
        return result if result is not None else set()

    def _exclude(self, result: Expansion, exclude: JSON, url: str) -> None:
        system = exclude.get("system")
        if not isinstance(system, str) or "concept" not in exclude:
            # an excluded filter or value set: what remains is not known exactly
            for s in result.systems if not isinstance(system, str) else {system}:
                result.open.setdefault(s, f"value set {url} excludes by filter or value set")
            return
        codes = {c["code"] for c in exclude["concept"] if isinstance(c.get("code"), str)}
        result.excluded.setdefault(system, set()).update(codes)
        if system in result.codes:
            result.codes[system] -= codes


def _files(folder: Path, prefix: str) -> Iterator[JSON]:
    for path in sorted(folder.glob(f"{prefix}-*.json")):
        yield orjson.loads(path.read_bytes())


def _sources() -> Iterator[JSON]:
    for folder in (paths.PROFILES / "carebridge", paths.PROFILES / "ukcore"):
        yield from _files(folder, "ValueSet")
        yield from _files(folder, "CodeSystem")
    bundle = orjson.loads((paths.R4_DEFINITIONS / "terminology.json").read_bytes())
    for entry in bundle["entry"]:
        yield entry["resource"]


@cache
def default_terminology() -> Terminology:
    """The process-wide terminology of the package, UK Core and R4."""
    return Terminology(_sources())
