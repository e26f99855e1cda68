"""What a caller may do and see, expressed as data the repository compiles into SQL.

Two layers decide visibility, and a resource must pass both:

- SMART scopes: which interactions a token allows on which types, the ``?param=value``
  narrowing of a scope, and the patient compartment for ``patient/`` scopes;
- consent (:mod:`server.consent.predicate`): what the service user's Consents and the
  custodian rules let this caller see, for every caller but the product's own processes.

Both come out as a :class:`Visibility`, which the unit of work compiles into the SQL of
every query, so counts, pages, includes and history stay right.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from server.consent.callers import DEFAULT_CUSTODIAN, Caller, caller_of
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
    #: the caller whose consent decision also applies (None: scopes alone decide)
    consent: Caller | None = None

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
        vis = self.scope_visibility(ctx, resource_type, interaction)
        if vis.nothing:
            return vis
        caller = caller_of(ctx)
        if resource_type == "AuditEvent":
            return vis if self.is_auditor(ctx, caller) else Visibility.none()
        if caller.internal or caller.break_glass:
            return vis
        if caller.kind == "service_user" and caller.user:
            vis = replace(vis, patient=caller.user.split("/", 1)[1], alternatives=vis.alternatives or ((),))
        return replace(vis, everything=False, consent=caller)

    def consent_for_write(self, ctx: AccessContext) -> Caller | None:
        """The caller whose consent decision limits which existing resources they may change.

        Break-glass opens records for reading only: writes are decided as for the same
        clinician without it.
        """
        caller = caller_of(ctx)
        if caller.internal:
            return None
        if caller.break_glass:
            return replace(caller, kind="staff")
        return caller

    @staticmethod
    def is_auditor(ctx: AccessContext, caller: Caller) -> bool:
        """AuditEvents are the custodian's: its processes, or its staff holding a scope that
        names AuditEvent itself (``*`` scopes do not open the audit trail)."""
        named = any(s.resource_type == "AuditEvent" for s in ctx.scopes)
        return named and (caller.internal or (caller.kind == "staff" and caller.organization == DEFAULT_CUSTODIAN))

    def scope_visibility(self, ctx: AccessContext, resource_type: str, interaction: str = "r") -> Visibility:
        """What the token's scopes alone let the caller see of ``resource_type``."""
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
