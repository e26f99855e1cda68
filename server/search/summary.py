"""``_summary`` and ``_elements``: returning part of a resource.

Summary elements are those the R4 definitions mark ``isSummary``, with the modifier and
mandatory elements; when that table is not available the identifying elements are kept. Either way the result is
tagged SUBSETTED, as R4 requires for a resource that is not whole.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import orjson

from carebridge import paths

SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}
_ALWAYS = ("resourceType", "id", "meta")


@cache
def _element_flags() -> dict[str, tuple[frozenset[str], frozenset[str]]]:
    """Resource type -> (top-level elements for ``_summary=true``, mandatory top-level elements),
    choice names without ``[x]``. Summary elements are those marked isSummary, the modifiers
    (which a client must never miss) and the mandatory ones."""
    path = paths.R4_DEFINITIONS / "element-definitions.json"
    if not path.exists():
        return {}
    data = orjson.loads(path.read_bytes())
    out: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
    for rtype, elements in (data.get("resources") or {}).items():
        summary, mandatory = set(), set()
        for name, el in elements.items():
            if "." in name or not isinstance(el, dict):
                continue
            short = name.removesuffix("[x]")
            if el.get("min", 0) >= 1:
                mandatory.add(short)
            if el.get("summary") or el.get("modifier") or el.get("min", 0) >= 1:
                summary.add(short)
        out[rtype] = (frozenset(summary), frozenset(mandatory))
    return out


def _tag(res: dict[str, Any]) -> dict[str, Any]:
    meta = dict(res.get("meta") or {})
    tags = [t for t in meta.get("tag", []) if t.get("code") != "SUBSETTED"]
    meta["tag"] = [*tags, SUBSETTED]
    res["meta"] = meta
    return res


def _keep(res: dict[str, Any], names: frozenset[str] | set[str]) -> dict[str, Any]:
    out = {}
    for key, value in res.items():
        base = key.lstrip("_")
        if key in _ALWAYS or base in names or any(base.startswith(n) and base[len(n):][:1].isupper() for n in names):
            out[key] = value
    return out


def apply_summary(res: dict[str, Any], summary: str | None, elements: list[str]) -> dict[str, Any]:
    rtype = res.get("resourceType", "")
    if elements:
        return _tag(_keep(res, set(elements)))
    if summary == "data":
        return _tag({k: v for k, v in res.items() if k != "text"})
    flags = _element_flags().get(rtype)
    if summary == "text":
        return _tag(_keep(res, {"text"} | (flags[1] if flags else set())))
    if summary == "true":
        names = flags[0] if flags else frozenset({"identifier", "status", "name", "subject", "patient", "code"})
        return _tag(_keep(res, names))
    return res
