"""Generated bad input for property tests: any JSON value, put in place of one value of a
valid document (a resource, a Bundle's entries)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

#: small JSON values of every kind, nested a little, with FHIR-ish keys and strings
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(["", "x", "#a", "urgent", "Patient/1"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["url", "system", "code", "value", "coding", "reference", "extension", "valueString"]),
        inner, max_size=3),
    max_leaves=6)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in ``value`` a value sits, as the keys and indexes that lead to it."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += paths(item, (*prefix, i))
    return found


def replace_one(document: Any, pick: int, replacement: Any) -> bool:
    """Put ``replacement`` at the ``pick``-th place of ``document`` (modulo their number), in
    place; False when the document has no place to put it."""
    spots = paths(document)
    if not spots:
        return False
    path = spots[pick % len(spots)]
    target = document
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = replacement
    return True
