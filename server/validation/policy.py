"""Which profiles a resource is validated against.

Two sources: the profiles the resource claims in ``meta.profile`` (each one the server
holds is applied; one it does not hold gives a warning, never an error, since a resource
may conform to profiles this server has never heard of), and the profiles the server
requires, configured here.

Required profiles: none yet, and why.

- DIALOG responses are checked by ``server/dialog/fit.py``, which knows their statuses: an
  ``in-progress`` response may be partial and the Questionnaire's canonical may come without
  its version. Requiring ``dialog-response`` (11 items, the versioned canonical) on every
  DIALOG response would refuse what that check rightly accepts; a response that claims
  ``dialog-response`` is held to it.
- Requiring ``carebridge-patient`` or ``cap-referral`` on every Patient or ServiceRequest
  would refuse what the source systems send today (a Patient without an NHS number
  verification status, a referral not yet triaged by the Central Access Point); the
  adapters claim the profiles in ``meta.profile`` when their output meets them, and that
  claim is then enforced.

``REQUIRED_PROFILES`` is the one place to add a rule when a type must always conform: a
profile URL and the condition under which it applies (a resource type may need a profile
only in some cases, e.g. by what it answers or codes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

Condition = Callable[[dict[str, Any]], bool]


#: resource type -> (profile URL, when it applies) the server requires on every write
REQUIRED_PROFILES: Final[Mapping[str, tuple[tuple[str, Condition], ...]]] = {}


def claimed(resource: dict[str, Any]) -> list[str]:
    meta = resource.get("meta")
    profiles = meta.get("profile") if isinstance(meta, dict) else None
    if not isinstance(profiles, list):
        return []
    return [p for p in profiles if isinstance(p, str)]


def required(resource: dict[str, Any]) -> list[str]:
    rules = REQUIRED_PROFILES.get(str(resource.get("resourceType")), ())
    return [url for url, applies in rules if applies(resource)]


def applicable(resource: dict[str, Any], extra: list[str] | None = None) -> list[str]:
    """Claimed, then required, then asked-for profiles, each once."""
    found: list[str] = []
    for url in (*claimed(resource), *required(resource), *(extra or [])):
        if url.split("|", 1)[0] not in {u.split("|", 1)[0] for u in found}:
            found.append(url)
    return found
