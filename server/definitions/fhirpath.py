"""FHIRPath for search parameter expressions, compiled once per parameter.

Most R4 search expressions are plain paths (``Patient.name.family``), unions of them,
choice-type casts (``(Observation.value as Quantity)``, ``(Observation.value.ofType(X)).text``)
and three idioms: filtering references by target type (``.where(resolve() is Patient)``),
filtering by an equality on a path (``.where(system='phone')``, ``.where(coding.system='...')``)
and a resource's extension by URL (``Resource.extension.where(url='...').value``). Those
compile to a small walker over the JSON that is fifty to a hundred times cheaper than a general
FHIRPath engine, which matters because every write runs every expression of its type.
Anything else goes to fhirpathpy, the general engine, with the R4 model so that choice
types resolve; ``tests/store/test_fhirpath_walkers.py`` holds the two to the same answers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Any

from fhirpathpy import compile as fhirpath_compile
from fhirpathpy.models import models as fhirpath_models

Extractor = Callable[[dict[str, Any]], list[Any]]

#: bumped whenever a compiled walker may select something else for the same expression, so
#: that stores indexed before are reported stale and ``carebridge reindex`` rebuilds them
#: (2: elements resolved against R4, so ``performer`` no longer matched ``performerType``)
EXTRACTION_REVISION = 2

_IDENT = r"[A-Za-z][A-Za-z0-9_]*"
_STEP = re.compile(
    rf"""\.(?:
        where\(resolve\(\)\s+is\s+(?P<resolve>{_IDENT})\)
      | where\((?P<field>{_IDENT}(?:\.{_IDENT})*)\s*=\s*'(?P<literal>[^']*)'\)
      | (?:as|ofType)\((?P<cast>{_IDENT})\)
      | (?P<name>{_IDENT})
    )""",
    re.VERBOSE,
)


def split_union(expression: str) -> list[str]:
    """Split on top-level ``|`` (not inside parentheses or quotes)."""
    parts, depth, quote, start = [], 0, False, 0
    for i, ch in enumerate(expression):
        if ch == "'":
            quote = not quote
        elif quote:
            continue
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            parts.append(expression[start:i].strip())
            start = i + 1
    parts.append(expression[start:].strip())
    return [p for p in parts if p]


def _strip_parens(part: str) -> str:
    while part.startswith("(") and part.endswith(")") and _balanced(part[1:-1]):
        part = part[1:-1].strip()
    return part


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            return False
    return depth == 0


def _cap(type_name: str) -> str:
    return type_name[0].upper() + type_name[1:]


def _exact(value: Any, key: str) -> list[Any]:
    """The values of JSON member ``key`` of ``value`` (a list flattened)."""
    if not isinstance(value, dict):
        return []
    found = value.get(key)
    if found is None:
        return []
    return found if isinstance(found, list) else [found]


def _first_of(value: Any, keys: tuple[str, ...]) -> list[Any]:
    """A choice element's value: whichever of its typed names (``valueQuantity``, ...) is there."""
    if not isinstance(value, dict):
        return []
    for key in keys:
        found = value.get(key)
        if found is not None:
            return found if isinstance(found, list) else [found]
    return []


class _R4Elements:
    """What R4 says an element is, from fhirpathpy's R4 model: the type it holds, or the typed
    names of a choice element. Paths are resolved when an expression is compiled, so that
    ``performer`` never picks up ``performerType`` and ``value`` finds only ``value[x]``."""

    def __init__(self) -> None:
        model = fhirpath_models["r4"]
        self.path_type: dict[str, str] = model["path2Type"]
        self.choices: dict[str, list[str]] = model["choiceTypePaths"]
        self.elsewhere: dict[str, str] = model["pathsDefinedElsewhere"]
        self.parent: dict[str, str] = model["type2Parent"]
        #: backbone elements have no type of their own in the model, only children
        self.backbones = {p.rpartition(".")[0] for p in self.path_type}

    def _owners(self, context: str) -> list[str]:
        """``context`` and what it inherits from; a backbone element's path inherits from
        BackboneElement."""
        chain = [context]
        current = "BackboneElement" if "." in context else context
        if current != context:
            chain.append(current)
        while current in self.parent:
            current = self.parent[current]
            chain.append(current)
        return chain

    def child(self, context: str, name: str) -> tuple[tuple[str, ...] | None, str] | None:
        """Element ``name`` of ``context``: the typed names when it is a choice (else None),
        and the context of what it holds; None when R4 has no such element."""
        for owner in self._owners(context):
            path = f"{owner}.{name}"
            if path in self.choices:
                return tuple(name + _cap(t) for t in self.choices[path]), path
            if path in self.elsewhere:
                return None, self.elsewhere[path]
            if path in self.backbones and path not in self.path_type:
                return None, path
            if path in self.path_type:
                return None, self.path_type[path]
        return None

    @staticmethod
    def primitive(context: str) -> bool:
        return context[:1].islower() or context.startswith("System.")


@cache
def _r4_elements() -> _R4Elements:
    return _R4Elements()


def _resolve(steps: list[tuple[str, Any]], resource_type: str) -> list[tuple[str, Any]] | None:
    """The walker's plan: each element step resolved against R4 to its JSON name(s), a cast
    folded into the choice element before it; None for what only the full engine can do."""
    r4 = _r4_elements()
    plan: list[tuple[str, Any]] = []
    context: str | None = resource_type
    i = 0
    while i < len(steps):
        kind, arg = steps[i]
        i += 1
        if kind == "name":
            # inside a choice of several types, or a primitive's id or extension (JSON's
            # "_name" sibling): the engine's work
            if context is None or r4.primitive(context):
                return None
            found = r4.child(context, arg)
            if found is None:
                return None
            typed, context = found
            if typed is None:
                plan.append(("name", arg))
            elif i < len(steps) and steps[i][0] == "cast":
                key = arg + _cap(steps[i][1])
                if key not in typed:
                    return None
                plan.append(("choice", (key,)))
                context = steps[i][1]
                i += 1
            else:
                plan.append(("choice", typed))
                context = None
        elif kind == "cast":
            return None  # a cast on an element of one type
        elif kind == "eq":
            inner = context
            for name in arg[0]:
                found = r4.child(inner, name) if inner is not None and not r4.primitive(inner) else None
                if found is None or found[0] is not None:
                    return None
                inner = found[1]
            plan.append((kind, arg))
        else:
            plan.append((kind, arg))
    return plan


def _compile_simple(part: str, resource_type: str) -> Extractor | None:
    """A walker for the plain-path subset, or None when ``part`` needs the full engine."""
    part = _unwrap_head(_strip_parens(part))
    trailing_cast = None
    m = re.fullmatch(rf"(.+?)\s+as\s+({_IDENT})", part)
    if m:
        part, trailing_cast = _strip_parens(m.group(1)), m.group(2)
    head, _, rest = part.partition(".")
    if head not in (resource_type, "Resource", "DomainResource") or not rest:
        return None
    steps: list[tuple[str, Any]] = []
    pos, text = 0, "." + rest
    while pos < len(text):
        sm = _STEP.match(text, pos)
        if not sm:
            return None
        if sm.group("resolve"):
            steps.append(("resolve", sm.group("resolve")))
        elif sm.group("field"):
            steps.append(("eq", (tuple(sm.group("field").split(".")), sm.group("literal"))))
        elif sm.group("cast"):
            steps.append(("cast", sm.group("cast")))
        else:
            if sm.group("name") in ("exists", "empty", "where", "resolve", "first", "not"):
                return None
            steps.append(("name", sm.group("name")))
        pos = sm.end()
    if trailing_cast:
        steps.append(("cast", trailing_cast))
    resolved = _resolve(steps, resource_type)
    if resolved is None:
        return None
    plan = resolved

    def walk(resource: dict[str, Any]) -> list[Any]:
        current: list[Any] = [resource]
        for kind, arg in plan:
            nxt: list[Any] = []
            if kind == "name":
                for v in current:
                    nxt.extend(_exact(v, arg))
            elif kind == "choice":
                for v in current:
                    nxt.extend(_first_of(v, arg))
            elif kind == "resolve":
                nxt = [
                    v for v in current
                    if isinstance(v, dict) and _reference_type(v.get("reference"), v.get("type")) == arg
                ]
            else:
                nxt = [v for v in current if _equals(v, *arg)]
            if not nxt:
                return []
            current = nxt
        return current

    return walk


def _equals(value: Any, path: tuple[str, ...], literal: str) -> bool:
    """FHIRPath's ``path = 'literal'`` on one item: true only when the path selects exactly
    one value and it is that string (a collection of several is not equal to one string)."""
    found = [value]
    for key in path:
        found = [c for v in found for c in _exact(v, key)]
    return len(found) == 1 and found[0] == literal


def _unwrap_head(part: str) -> str:
    """``(X.a.ofType(T)).b`` as ``X.a.ofType(T).b``: brackets around a leading path change nothing."""
    if not part.startswith("("):
        return part
    depth = 0
    for i, ch in enumerate(part):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0:
            inner, rest = part[1:i].strip(), part[i + 1:]
            if rest.startswith(".") and "|" not in inner and not re.search(r"\sas\s", inner) and _balanced(inner):
                return inner + rest
            return part
    return part


def _reference_type(reference: Any, declared: Any) -> str | None:
    if isinstance(declared, str):
        return declared
    if not isinstance(reference, str):
        return None
    parts = reference.split("/")
    if len(parts) >= 2 and parts[-2] != "_history":
        return parts[-2]
    if len(parts) >= 4 and parts[-2] == "_history":
        return parts[-4]
    return None


_EXISTS_NOT_FALSE = re.compile(r"^(?P<path>[A-Za-z.]+)\.exists\(\) and (?P=path) != false$")


def _compile_exists_not_false(expression: str, resource_type: str) -> Extractor | None:
    """``X.exists() and X != false``: R4's idiom for "deceased", true for a date or ``true``."""
    m = _EXISTS_NOT_FALSE.match(expression.strip())
    walk = _compile_simple(m.group("path"), resource_type) if m else None
    if walk is None:
        return None

    def evaluate(resource: dict[str, Any]) -> list[Any]:
        found = walk(resource)
        return [bool(found) and found != [False]]

    return evaluate


def compile_expression(expression: str, resource_type: str) -> Extractor:
    """One callable giving every value ``expression`` selects in a resource of the type."""
    idiom = _compile_exists_not_false(expression, resource_type)
    if idiom is not None:
        return idiom
    parts = [p for p in split_union(expression) if _applies(p, resource_type)]
    if not parts:
        return lambda _resource: []
    walkers = [_compile_simple(p, resource_type) for p in parts]
    if all(w is not None for w in walkers):
        simple = [w for w in walkers if w is not None]
        if len(simple) == 1:
            return simple[0]

        def union(resource: dict[str, Any]) -> list[Any]:
            out: list[Any] = []
            for w in simple:
                out.extend(w(resource))
            return out

        return union
    return compile_general(expression, resource_type)


def compile_general(expression: str, resource_type: str) -> Extractor:
    """``expression`` on fhirpathpy, the general engine (the parts that apply to the type)."""
    parts = [p for p in split_union(expression) if _applies(p, resource_type)]
    if not parts:
        return lambda _resource: []
    text = " | ".join(_rebase(p, resource_type) for p in parts)
    engine = fhirpath_compile(text, fhirpath_models["r4"])

    def general(resource: dict[str, Any]) -> list[Any]:
        try:
            return list(engine(resource, None))
        except Exception:  # an expression that cannot apply to this content selects nothing
            return []

    return general


def _applies(part: str, resource_type: str) -> bool:
    head = re.match(rf"\(*\s*({_IDENT})", part)
    return bool(head) and head.group(1) in (resource_type, "Resource", "DomainResource")  # type: ignore[union-attr]


def _rebase(part: str, resource_type: str) -> str:
    return re.sub(r"^(\(*\s*)(Resource|DomainResource)\.", rf"\g<1>{resource_type}.", part)
