"""What a FHIR value contributes to each index table.

The search expressions yield raw JSON (strings, numbers, dicts); the FHIR datatype is told
by the parameter's type and the value's shape, as the search specification maps them:
token from code, Coding, CodeableConcept, Identifier, ContactPoint and boolean; string
from string, HumanName and Address parts; date from date/dateTime/instant, Period and
Timing; and so on.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from server.fhir.dates import MAX_TIME, MIN_TIME, DateFormatError, parse_range
from server.fhir.text import normalise

MAX_STRING = 255
CONTACT_SYSTEMS = frozenset({"phone", "fax", "email", "pager", "url", "sms", "other"})


def _clip(value: str, limit: int = MAX_STRING) -> str:
    return value if len(value) <= limit else value[:limit]


def tokens(value: Any) -> Iterator[tuple[str | None, str | None, str | None]]:
    """(system, code, text) triples."""
    if isinstance(value, bool):
        yield None, "true" if value else "false", None
    elif isinstance(value, str):
        yield None, _clip(value), None
    elif isinstance(value, (int, float)):
        yield None, str(value), None
    elif isinstance(value, dict):
        if "coding" in value or ("text" in value and "code" not in value and "value" not in value):
            text = value.get("text")
            codings = value.get("coding") or []
            shown = set()
            for coding in codings:
                display = _norm(coding.get("display") or text)
                shown.add(display)
                yield coding.get("system"), coding.get("code"), display
            if text and _norm(text) not in shown:  # :text searches CodeableConcept.text too
                yield None, None, _norm(text)
        elif "code" in value:  # Coding (or Quantity used as a token, rare)
            yield value.get("system"), _clip(str(value["code"])), _norm(value.get("display"))
        elif "value" in value:
            system = value.get("system")
            if system in CONTACT_SYSTEMS and "type" not in value and "assigner" not in value:
                yield system, _clip(str(value["value"])), None  # ContactPoint
            else:  # Identifier
                id_type: dict[str, Any] = value["type"] if isinstance(value.get("type"), dict) else {}
                yield system, _clip(str(value["value"])), _norm(id_type.get("text"))
                # for :of-type: one row per type coding, system "type-system|type-code"
                for coding in id_type.get("coding") or []:
                    if isinstance(coding, dict) and coding.get("code"):
                        yield f"{coding.get('system') or ''}|{coding['code']}", _clip(str(value["value"])), None


def _norm(text: Any) -> str | None:
    return _clip(normalise(text)) if isinstance(text, str) and text else None


_NAME_PARTS = ("family", "given", "prefix", "suffix", "text")
_ADDRESS_PARTS = ("line", "city", "district", "state", "postalCode", "country", "text")


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        parts: tuple[str, ...] = _NAME_PARTS if ("family" in value or "given" in value) else _ADDRESS_PARTS
        if not any(p in value for p in parts):
            parts = _NAME_PARTS + _ADDRESS_PARTS
        for part in parts:
            item = value.get(part)
            if isinstance(item, str):
                yield item
            elif isinstance(item, list):
                yield from (i for i in item if isinstance(i, str))


def string_rows(value: Any) -> Iterator[tuple[str, str]]:
    for s in strings(value):
        yield _clip(normalise(s)), _clip(s)


def date_ranges(value: Any) -> Iterator[tuple[int, int]]:
    try:
        if isinstance(value, str):
            yield parse_range(value)
        elif isinstance(value, dict):
            if "start" in value or "end" in value:  # Period
                low = parse_range(value["start"])[0] if value.get("start") else MIN_TIME
                high = parse_range(value["end"])[1] if value.get("end") else MAX_TIME
                yield low, high
            elif "event" in value or "repeat" in value:  # Timing
                for event in value.get("event", []):
                    yield parse_range(event)
                bounds = (value.get("repeat") or {}).get("boundsPeriod")
                if bounds:
                    yield from date_ranges(bounds)
    except DateFormatError:
        return


def numbers(value: Any) -> Iterator[tuple[float, float, str | None, str | None]]:
    """(low, high, system, code) for numbers and Quantities."""
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield float(value), float(value), None, None
    elif isinstance(value, dict) and isinstance(value.get("value"), (int, float)):
        number = float(value["value"])
        low, high = number, number
        comparator = value.get("comparator")
        if comparator in ("<", "<="):
            low = float("-inf")
        elif comparator in (">", ">="):
            high = float("inf")
        code = value.get("code") or value.get("unit")
        yield low, high, value.get("system"), code
    elif isinstance(value, dict) and ("low" in value or "high" in value):  # Range
        lo = (value.get("low") or {}).get("value")
        hi = (value.get("high") or {}).get("value")
        unit = value.get("low") or value.get("high") or {}
        yield (
            float(lo) if lo is not None else float("-inf"),
            float(hi) if hi is not None else float("inf"),
            unit.get("system"),
            unit.get("code"),
        )


def references(value: Any, base_url: str | None) -> Iterator[tuple[str | None, str | None, str | None]]:
    """(target_type, target_id, url) for a Reference, canonical or uri value."""
    if isinstance(value, str):  # canonical or uri
        yield None, None, _clip(value, 512)
        return
    if not isinstance(value, dict):
        return
    ref = value.get("reference")
    if isinstance(ref, str) and not ref.startswith("#"):
        if base_url and ref.startswith(base_url + "/"):
            ref = ref[len(base_url) + 1 :]
        parts = ref.split("/")
        if "_history" in parts:
            parts = parts[: parts.index("_history")]
        if "://" not in ref and not ref.startswith("urn:") and len(parts) == 2:
            yield parts[0], parts[1], None
        else:
            yield (parts[-2] if len(parts) >= 2 else value.get("type")), (parts[-1] if parts else None), ref


def reference_identifiers(value: Any) -> Iterator[tuple[str | None, str | None, str | None]]:
    """Token rows for ``Reference.identifier``, which ``:identifier`` searches."""
    if isinstance(value, dict) and isinstance(value.get("identifier"), dict):
        ident = value["identifier"]
        if ident.get("value"):
            yield ident.get("system"), _clip(str(ident["value"])), None


def uris(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield _clip(value, 512)
