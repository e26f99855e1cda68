"""SMART App Launch v2 scopes (``system/Patient.rs?identifier=...``), with v1 accepted.

A scope grants interactions on a resource type within a context: ``patient`` (the
launch patient's compartment), ``user`` (what the user may see) or ``system``. The
``?param=value`` suffix narrows a grant to resources matching that search.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

from server.fhir.errors import Unauthorized

#: create, read, update, delete, search: the v2 letters, in the order v2 requires.
PERMISSIONS = "cruds"
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}
_SCOPE = re.compile(r"^(patient|user|system)/(\*|[A-Z][A-Za-z]+)\.([a-z*]+)(?:\?(.*))?$")


@dataclass(frozen=True)
class Scope:
    context: str
    resource_type: str  # a type or "*"
    permissions: frozenset[str]
    #: search parameters that narrow the grant (ANDed), empty for none
    filters: tuple[tuple[str, str], ...] = ()

    def grants(self, interaction: str, resource_type: str) -> bool:
        return interaction in self.permissions and self.resource_type in ("*", resource_type)

    def __str__(self) -> str:
        perms = "".join(p for p in PERMISSIONS if p in self.permissions)
        query = "&".join(f"{k}={v}" for k, v in self.filters)
        return f"{self.context}/{self.resource_type}.{perms}" + (f"?{query}" if query else "")


def parse_scope(text: str) -> Scope | None:
    """A resource scope, or None for scopes that grant no resource access (openid, launch...)."""
    m = _SCOPE.match(text)
    if not m:
        return None
    context, rtype, perms, query = m.groups()
    if perms in _V1:
        letters = _V1[perms]
    else:
        if any(c not in PERMISSIONS for c in perms) or list(perms) != sorted(perms, key=PERMISSIONS.index):
            raise Unauthorized(f"scope {text!r}: permissions must be letters of 'cruds' in that order")
        letters = perms
    filters = tuple(parse_qsl(query, keep_blank_values=False)) if query else ()
    return Scope(context, rtype, frozenset(letters), filters)


def parse_scopes(text: str) -> tuple[Scope, ...]:
    out = []
    for item in text.split():
        scope = parse_scope(item)
        if scope is not None:
            out.append(scope)
    return tuple(out)


def within(requested: Scope, allowed: Scope) -> bool:
    """Whether ``requested`` grants nothing that ``allowed`` does not.

    Same context, the same type (or ``allowed`` names every type), no permission letter
    beyond ``allowed``'s, and every filter of ``allowed`` also narrows ``requested``.
    """
    return (
        requested.context == allowed.context
        and allowed.resource_type in ("*", requested.resource_type)
        and requested.permissions <= allowed.permissions
        and set(allowed.filters) <= set(requested.filters)
    )
