"""A privacy Consent flattened into rows the access predicate can join.

Only an ``active`` Consent of scope ``patient-privacy`` whose ``patient`` is a local
Patient is enforced; any other Consent yields no rules (it is stored and served, but
decides nothing). Each provision becomes one rule, numbered in pre-order, so that the
provisions nested under rule ``node`` are those numbered ``node < n <= last``.

R4 evaluates a Consent by letting the deepest provision whose criteria all match decide,
each nested provision being an exception to its parent. A nested provision applies only
within its parent, so a rule's criteria are its own intersected with all of its
ancestors': ``actor in A`` under ``actor in B`` becomes ``actor in A & B``. A provision
whose intersected criteria cannot match anything (an empty intersection, an empty
period) is dropped together with the provisions under it.

Across provisions and Consents a deny wins, so the opt-in baseline needs care: a root
``deny`` with no criteria of its own and nested exceptions ("share nothing but ...")
only restates the default and becomes no rule, while a root ``deny`` with nothing nested
withdraws all sharing and overrides every permit of the patient's other Consents.

Criteria that this product cannot evaluate exactly are enforced so as never to widen
access: a ``permit`` limited by ``code``, ``dataPeriod``, ``data.meaning`` ``authoredby``
or by an ``action`` other than access / use / disclose never applies; a ``deny`` limited
by them applies without that limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from server.fhir.dates import DateFormatError, parse_range

CONSENT_SCOPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentscope"
RESOURCE_TYPES_SYSTEM = "http://hl7.org/fhir/resource-types"
#: actions under which a provision is about showing data to the actor
READ_ACTIONS = frozenset({"access", "use", "disclose"})
#: the data meanings the predicate evaluates
DATA_MEANINGS = frozenset({"instance", "related", "dependents"})
KINDS = ("actor", "purpose", "class", "label", "data")


@dataclass(frozen=True)
class Criteria:
    """The intersected limits of one provision; ``None`` for a kind means 'not limited'."""

    actor: frozenset[str] | None = None
    purpose: frozenset[str] | None = None
    klass: frozenset[str] | None = None
    label: frozenset[str] | None = None
    data: frozenset[str] | None = None
    low: int | None = None
    high: int | None = None

    def values(self, kind: str) -> frozenset[str] | None:
        return self.klass if kind == "class" else getattr(self, kind)

    def narrowed(self, other: Criteria) -> Criteria | None:
        """Both sets of criteria at once, or None when nothing can satisfy both."""
        merged: dict[str, Any] = {}
        for kind in KINDS:
            a, b = self.values(kind), other.values(kind)
            value = b if a is None else a if b is None else a & b
            if value is not None and not value:
                return None
            merged["klass" if kind == "class" else kind] = value
        low = max((x for x in (self.low, other.low) if x is not None), default=None)
        high = min((x for x in (self.high, other.high) if x is not None), default=None)
        if low is not None and high is not None and low > high:
            return None
        return Criteria(**merged, low=low, high=high)


@dataclass
class ConsentRows:
    rules: list[dict[str, Any]] = field(default_factory=list)
    terms: list[dict[str, Any]] = field(default_factory=list)


def is_enforced(consent: dict[str, Any]) -> bool:
    if consent.get("status") != "active":
        return False
    codings = (consent.get("scope") or {}).get("coding") or []
    return any(c.get("system") == CONSENT_SCOPE_SYSTEM and c.get("code") == "patient-privacy" for c in codings)


def patient_id(consent: dict[str, Any]) -> str | None:
    ref = (consent.get("patient") or {}).get("reference")
    if not isinstance(ref, str):
        return None
    parts = ref.rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] == "Patient" and parts[-1]:
        return parts[-1]
    return None


def reference_key(ref: dict[str, Any] | None) -> str | None:
    """How an actor or data reference is keyed: ``Type/id``, or ``identifier|system|value``."""
    if not isinstance(ref, dict):
        return None
    literal = ref.get("reference")
    if isinstance(literal, str) and "/" in literal and not literal.startswith(("#", "urn:")):
        parts = literal.split("/_history/")[0].rstrip("/").split("/")
        return f"{parts[-2]}/{parts[-1]}"
    ident = ref.get("identifier")
    if isinstance(ident, dict) and ident.get("system") and ident.get("value"):
        return f"identifier|{ident['system']}|{ident['value']}"
    return None


def _codes(codings: list[dict[str, Any]] | None, with_system: bool = True) -> frozenset[str] | None:
    if not codings:
        return None
    out = set()
    for c in codings:
        code = c.get("code")
        if code:
            out.add(f"{c.get('system', '')}|{code}" if with_system else code)
    return frozenset(out)


def _own_criteria(provision: dict[str, Any], permit: bool) -> Criteria | None:
    """The provision's own limits; None when it can never apply (see the module docstring)."""
    exact = True  # False when an unsupported limit is present
    actor = None
    if provision.get("actor"):
        refs = {reference_key(a.get("reference")) for a in provision["actor"]}
        actor = frozenset(k for k in refs if k)
    purpose = _codes(provision.get("purpose"), with_system=False)
    klass = None
    if provision.get("class"):
        types = set()
        for c in provision["class"]:
            if c.get("system") in (RESOURCE_TYPES_SYSTEM, None) and c.get("code"):
                types.add(c["code"])  # a resource type
            elif c.get("code") and "://" in c["code"]:
                types.add(c["code"])  # a profile URL
            elif c.get("system") and "://" in c["system"] and not c.get("code"):
                types.add(c["system"])
            else:
                exact = False
        klass = frozenset(types)
    label = _codes(provision.get("securityLabel"))
    data = None
    if provision.get("data"):
        keys = set()
        for d in provision["data"]:
            key = reference_key(d.get("reference"))
            if d.get("meaning") in DATA_MEANINGS and key and not key.startswith("identifier|"):
                keys.add(f"{d['meaning']}|{key}")
            else:
                exact = False
        data = frozenset(keys)
    if provision.get("code") or provision.get("dataPeriod"):
        exact = False
    actions = {c.get("code") for a in provision.get("action") or [] for c in a.get("coding") or []}
    if actions and not actions & READ_ACTIONS:
        exact = False
    low = high = None
    period = provision.get("period") or {}
    try:
        if period.get("start"):
            low = parse_range(period["start"])[0]
        if period.get("end"):
            high = parse_range(period["end"])[1]
    except DateFormatError:
        exact = False
    if not exact:
        if permit:
            return None
        # a deny applies without the limits it cannot evaluate exactly
        return Criteria(actor=actor or None, purpose=purpose, low=low, high=high)
    return Criteria(actor=actor, purpose=purpose, klass=klass, label=label, data=data, low=low, high=high)


def consent_rows(consent: dict[str, Any]) -> ConsentRows:
    """Rule and term rows (without ``resource_pk``) for an enforced Consent, else none."""
    out = ConsentRows()
    pid = patient_id(consent)
    root = consent.get("provision")
    if not is_enforced(consent) or pid is None or not isinstance(root, dict):
        return out
    counter = [0]

    def walk(provision: dict[str, Any], inherited: Criteria, parent_type: str | None) -> None:
        # a provision without a type is the exception to its parent (the root: a deny)
        kind = provision.get("type") or ("deny" if parent_type in (None, "permit") else "permit")
        own = _own_criteria(provision, kind == "permit")
        criteria = inherited.narrowed(own) if own is not None else None
        if criteria is None:
            # nothing can satisfy this provision, so nothing under it can apply either
            return
        children = [c for c in provision.get("provision") or [] if isinstance(c, dict)]
        if parent_type is None and kind == "deny" and children and criteria == Criteria():
            # the opt-in baseline ("nothing is shared but what follows") states the default
            # and is no decision of its own; only its exceptions are rules
            for child in children:
                walk(child, criteria, kind)
            return
        node = counter[0]
        counter[0] += 1
        row: dict[str, Any] = {
            "patient_id": pid, "node": node, "last": node, "permit": kind == "permit",
            "period_low": criteria.low, "period_high": criteria.high,
        }
        out.rules.append(row)
        for name in KINDS:
            values = criteria.values(name)
            row[f"by_{name}"] = values is not None
            for value in sorted(values or ()):
                out.terms.append({"node": node, "kind": name, "value": value})
        for child in children:
            walk(child, criteria, kind)
        row["last"] = counter[0] - 1

    walk(root, Criteria(), None)
    return out
