"""``_summary`` and ``_elements``: returning part of a resource.

Summary elements are those the R4 definitions mark ``isSummary``; when that table is not
available the mandatory and identifying elements are kept. Either way the result is
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
def _summary_elements() -> dict[str, frozenset[str]]:
    """Resource type -> top-level element names marked isSummary (choice names without [x])."""
    path = paths.R4_DEFINITIONS / "element-definitions.json"
    if not path.exists():
        return {}
    data = orjson.loads(path.read_bytes())
    out: dict[str, frozenset[str]] = {}
    for rtype, info in (data.get("types") or {}).items():
        elements = info.get("elements", {}) if isinstance(info, dict) else {}
        names = set()
        for name, el in elements.items():
            if "." not in name and isinstance(el, dict) and (el.get("summary") or el.get("min", 0) >= 1):
                names.add(name.removesuffix("[x]"))
        if names:
            out[rtype] = frozenset(names)
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
    if summary == "text":
        mandatory = _summary_elements().get(rtype, frozenset())
        return _tag(_keep(res, {"text"} | {n for n in mandatory if n in ("status",)}))
    if summary == "true":
        names = _summary_elements().get(rtype)
        if names is None:
            names = frozenset({"identifier", "status", "name", "subject", "patient", "code"})
        return _tag(_keep(res, names))
    return res
