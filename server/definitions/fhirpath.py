"""FHIRPath for search parameter expressions, compiled once per parameter.

Most R4 search expressions are plain paths (``Patient.name.family``), unions of them,
choice-type casts (``(Observation.value as Quantity)``) and two idioms: filtering
references by target type (``.where(resolve() is Patient)``) and filtering by a simple
equality (``.where(system='phone')``). Those compile to a small walker over the JSON that is
about twenty times cheaper than a general FHIRPath engine, which matters because every
write runs every expression of its type. Anything else goes to fhirpathpy, the general
engine, with the R4 model so that choice types resolve.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fhirpathpy import compile as fhirpath_compile
from fhirpathpy.models import models as fhirpath_models

Extractor = Callable[[dict[str, Any]], list[Any]]

_IDENT = r"[A-Za-z][A-Za-z0-9_]*"
_STEP = re.compile(
    rf"""\.(?:
        where\(resolve\(\)\s+is\s+(?P<resolve>{_IDENT})\)
      | where\((?P<field>{_IDENT})\s*=\s*'(?P<literal>[^']*)'\)
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


def _children(value: Any, name: str, cast: str | None) -> list[Any]:
    """The values of element ``name`` in ``value``; choice elements are found by prefix."""
    if not isinstance(value, dict):
        return []
    if cast is not None:
        found = value.get(name + _cap(cast))
    else:
        found = value.get(name)
        if found is None:
            for key, item in value.items():
                if key.startswith(name) and len(key) > len(name) and key[len(name)].isupper():
                    found = item
                    break
    if found is None:
        return []
    return found if isinstance(found, list) else [found]


def _compile_simple(part: str, resource_type: str) -> Extractor | None:
    """A walker for the plain-path subset, or None when ``part`` needs the full engine."""
    part = _strip_parens(part)
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
            steps.append(("eq", (sm.group("field"), sm.group("literal"))))
        elif sm.group("cast"):
            steps.append(("cast", sm.group("cast")))
        else:
            if sm.group("name") in ("exists", "empty", "where", "resolve", "extension", "first", "not"):
                return None
            steps.append(("name", sm.group("name")))
        pos = sm.end()
    if trailing_cast:
        steps.append(("cast", trailing_cast))
    # fold a cast into the element step before it: value.as(Quantity) -> valueQuantity
    plan: list[tuple[str, Any]] = []
    for kind, arg in steps:
        if kind == "cast" and plan and plan[-1][0] == "name":
            plan[-1] = ("choice", (plan[-1][1], arg))
        elif kind == "cast":
            return None
        else:
            plan.append((kind, arg))

    def walk(resource: dict[str, Any]) -> list[Any]:
        current: list[Any] = [resource]
        for kind, arg in plan:
            nxt: list[Any] = []
            if kind == "name":
                for v in current:
                    nxt.extend(_children(v, arg, None))
            elif kind == "choice":
                for v in current:
                    nxt.extend(_children(v, arg[0], arg[1]))
            elif kind == "resolve":
                nxt = [
                    v for v in current
                    if isinstance(v, dict) and _reference_type(v.get("reference"), v.get("type")) == arg
                ]
            else:
                field, literal = arg
                nxt = [v for v in current if isinstance(v, dict) and v.get(field) == literal]
            if not nxt:
                return []
            current = nxt
        return current

    return walk


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
