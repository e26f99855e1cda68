"""What a caller may do and see, expressed as data the repository compiles into SQL.

This first policy enforces SMART scopes: which interactions a token allows on which
types, the ``?param=value`` narrowing of a scope, and the patient compartment for
``patient/`` scopes. The consent engine extends :meth:`AccessPolicy.visibility` at this same
seam, so every query, count and page stays right when consent narrows what is visible.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.consent.context import AccessContext
from server.fhir.errors import Forbidden

INTERACTION_NAMES = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}


@dataclass(frozen=True)
class Visibility:
    """Which resources of one type a caller may see.

    ``everything`` means no restriction. Otherwise a resource is visible when it matches
    any of ``alternatives`` (each a list of search parameters that must all match; an
    empty list matches all) and, with ``patient`` set, lies in that patient's compartment.
    ``nothing`` hides the whole type.
    """

    everything: bool = False
    nothing: bool = False
    alternatives: tuple[tuple[tuple[str, str], ...], ...] = ()
    patient: str | None = None

    @classmethod
    def all(cls) -> Visibility:
        return cls(everything=True)

    @classmethod
    def none(cls) -> Visibility:
        return cls(nothing=True)


class AccessPolicy:
    """Decides interactions and visibility for an :class:`AccessContext`."""

    def require(self, ctx: AccessContext, interaction: str, resource_type: str) -> None:
        """Raise 403 unless some scope grants ``interaction`` (one of ``cruds``) on the type."""
        if not any(s.grants(interaction, resource_type) for s in ctx.scopes):
            raise Forbidden(
                f"the token's scopes do not allow {INTERACTION_NAMES[interaction]} on {resource_type}"
            )

    def allows(self, ctx: AccessContext, interaction: str, resource_type: str) -> bool:
        return any(s.grants(interaction, resource_type) for s in ctx.scopes)

    def visibility(self, ctx: AccessContext, resource_type: str, interaction: str = "r") -> Visibility:
        """What of ``resource_type`` the caller may see (read and search share it)."""
        grants = [s for s in ctx.scopes if s.resource_type in ("*", resource_type)
                  and (interaction in s.permissions or (interaction == "r" and "s" in s.permissions))]
        if not grants:
            return Visibility.none()
        patient_grants = [s for s in grants if s.context == "patient"]
        other = [s for s in grants if s.context != "patient"]
        if other:
            if any(not s.filters for s in other):
                return Visibility.all()
            return Visibility(alternatives=tuple(s.filters for s in other))
        if ctx.patient is None:
            return Visibility.none()
        if any(not s.filters for s in patient_grants):
            return Visibility(alternatives=((),), patient=ctx.patient)
        return Visibility(alternatives=tuple(s.filters for s in patient_grants), patient=ctx.patient)

    def write_visibility(self, ctx: AccessContext, resource_type: str, interaction: str) -> Visibility:
        """What a caller may write: a written resource must match one of its write grants."""
        grants = [s for s in ctx.scopes if s.grants(interaction, resource_type)]
        if not grants:
            return Visibility.none()
        if any(not s.filters and s.context != "patient" for s in grants):
            return Visibility.all()
        patient = ctx.patient if all(s.context == "patient" for s in grants) else None
        return Visibility(alternatives=tuple(s.filters for s in grants), patient=patient)
