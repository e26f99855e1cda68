"""String normalisation for search: FHIR string search ignores case and accents."""

from __future__ import annotations

import unicodedata
from functools import lru_cache


@lru_cache(maxsize=65536)
def normalise(value: str) -> str:
    """Case-folded, accent-stripped, whitespace-collapsed form used for string matching."""
    if value.isascii():
        return " ".join(value.lower().split())
    decomposed = unicodedata.normalize("NFKD", value)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.casefold().split())
