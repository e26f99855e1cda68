"""The consent decision as a SQL predicate on a resource row.

The repository adds this predicate to every query it runs for the caller (searches,
counts, includes, chains, ``_has``, history, ``$everything``, conditional matches, reads),
so a resource the caller may not see is never selected, counted or paged: there is no
filtering after the fact to get wrong.

For a resource ``r`` in the compartment of patients P1..Pn, ``r`` is visible when it is
allowed for every Pi (a resource in no patient's compartment, such as an Organization,
is directory data and is visible). For one patient P:

    allowed = (custodial(r) and direct care and not denied-by-name)
              or (permitted by a Consent of P and not denied by a Consent of P)

An override recorded by staff (for risk, lack of capacity or a legal duty) permits
despite denials. A Consent permits (or denies) when a permit (deny) provision applies to this caller and
resource and no provision nested under it applies: the deepest applying provision decides,
as R4 specifies. Across provisions and Consents a deny wins. The custodian's direct-care
access is limited only by denials that name actors: a base "deny" (nothing is shared
unless I say so) is about sharing beyond the organisation that holds the record.
Deleted resources are visible only to callers that see everything.

Speed: of a rule's criteria, the period, actor and purpose depend on the caller alone, not on
the resource. They are evaluated once per unit of work (:meth:`ConsentPredicate.applicable`,
two index look-ups), and the per-resource predicate then joins only those rules and checks only
class, label and data. A caller whom no Consent names (most callers, for most service users)
gets a predicate without any rule join at all. When very many rules apply to the caller (a
Consent that permits everyone, held by a large share of the population), the predicate falls
back to evaluating every criterion per row, which decides the same.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    FromClause,
    Select,
    Table,
    TextClause,
    and_,
    bindparam,
    exists,
    false,
    literal,
    not_,
    or_,
    select,
    text,
    true,
    tuple_,
    union_all,
)

from server.consent.callers import (
    CUSTODIAN_TAG_SYSTEM,
    DEFAULT_CUSTODIAN,
    NOT_FOR_PATIENT_LABELS,
    Caller,
)
from server.consent.rules import OVERRIDE_TERM
from server.definitions.search_parameters import SearchParameterRegistry
from server.store.schema import (
    compartment,
    compartment_outside,
    consent_rule,
    consent_term,
    reference_index,
    resource,
    token_index,
    uri_index,
)

ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
#: how an Organization carries the code a token names it by: its ODS code, or for a local
#: authority its GSS code where the directory holds no ODS code for it
ORGANIZATION_CODE_SYSTEMS = (ODS_SYSTEM, "https://fhir.carebridge.example/Id/gss-code")
#: above this many rules applying to one caller, the predicate evaluates every criterion per row
APPLICABLE_LIMIT = 2000


def _id_lookup(index: Table, match: list[ColumnElement[bool]], limit: int) -> Select[Any]:
    return (select(resource.c.id).select_from(resource.join(index, index.c.resource_pk == resource.c.pk))
            .where(index.c.param_id == bindparam("param_id"), *match, resource.c.deleted == false()).limit(limit))


# The look-ups made for every request, built once: building a statement costs SQLAlchemy
# more than SQLite takes to run it.
_REFERRING = _id_lookup(reference_index, [reference_index.c.target_id == bindparam("target_id"),
                                          reference_index.c.target_type == bindparam("target_type")], 1000)
_BY_IDENTIFIER = _id_lookup(token_index, [token_index.c.code == bindparam("code"),
                                          token_index.c.system == bindparam("system")], 100)


def _rule_lookups() -> tuple[Select[Any], Select[Any], Select[Any]]:
    """The rules applying to a caller now: those naming no actor, those naming one of the
    caller's keys (from ``ix_consent_term_value``; a rule with actor terms names actors, so
    by_actor is not tested, which would lead SQLite without statistics to walk every rule
    by ``ix_consent_rule_unnamed``), and which permits are recorded overrides."""
    n, t, p = consent_rule, consent_term, consent_term.alias("applicable_purpose")
    now = bindparam("now", type_=BigInteger())
    criteria = [
        or_(n.c.period_low.is_(None), n.c.period_low <= now),
        or_(n.c.period_high.is_(None), n.c.period_high >= now),
        or_(n.c.by_purpose == false(), exists(select(literal(1)).where(
            p.c.resource_pk == n.c.resource_pk, p.c.node == n.c.node, p.c.kind == "purpose",
            p.c.value == bindparam("purpose"),
        ))),
    ]
    columns = (n.c.resource_pk, n.c.node, n.c.last, n.c.patient_id, n.c.permit, n.c.by_actor)
    unnamed = select(*columns).where(n.c.by_actor == false(), *criteria).limit(APPLICABLE_LIMIT + 1)
    named = (select(*columns).select_from(t.join(n, and_(n.c.resource_pk == t.c.resource_pk, n.c.node == t.c.node)))
             .where(t.c.kind == "actor", t.c.value.in_(bindparam("keys", expanding=True)), *criteria)
             .limit(APPLICABLE_LIMIT + 1))
    overriding = select(t.c.resource_pk, t.c.node).where(
        t.c.resource_pk.in_(bindparam("pks", expanding=True)),
        t.c.kind == OVERRIDE_TERM["kind"], t.c.value == OVERRIDE_TERM["value"])
    return unnamed, named, overriding


_UNNAMED_RULES, _NAMED_RULES, _OVERRIDING = _rule_lookups()

#: the row alias the reusable predicates are built on (see :meth:`ConsentPredicate.visible`)
_TEMPLATE_ROW = resource.alias("consent_r")
TEMPLATES_KEPT = 512


class _Bounded(dict[tuple[Any, ...], Any]):
    """A cache that empties itself when full: callers come and go, rules change."""

    def __setitem__(self, key: tuple[Any, ...], value: Any) -> None:
        if len(self) >= TEMPLATES_KEPT:
            self.clear()
        super().__setitem__(key, value)


#: (caller, applicable rules, registry) -> the predicate on _TEMPLATE_ROW
_TEMPLATES: _Bounded = _Bounded()
#: the same, plus a named row alias and a dialect -> rendered to SQL text
_RENDERED: _Bounded = _Bounded()


@dataclass(frozen=True)
class ApplicableRule:
    """A rule whose period, actor and purpose hold for the caller (now)."""

    resource_pk: int
    node: int
    last: int
    patient_id: str
    permit: bool
    by_actor: bool
    #: a permit that overrides the service user's refusals (see server/consent/rules.py)
    override: bool = False


class ConsentPredicate:
    """Compiles the decision for one caller, inside one unit of work (one point in time)."""

    def __init__(self, conn: Connection, registry: SearchParameterRegistry, caller: Caller, now: int) -> None:
        self.conn = conn
        self.registry = registry
        self.caller = caller
        self.now = now
        self._actor_keys: list[str] | None = None
        self._applicable: list[ApplicableRule] | None = None
        self._applicable_known = False
        self._param_id_cache: dict[str, list[int]] = {}

    # -- who the caller is, as consent actors -------------------------------------------------
    def actor_keys(self) -> list[str]:
        """Every key under which a Consent's actor may name this caller.

        Looked up once per unit of work, so a new CareTeam membership or Organization
        counts from the next request on.
        """
        if self._actor_keys is not None:
            return self._actor_keys
        keys: set[str] = set()
        user = self.caller.user
        if user:
            keys.add(user)
        if self.caller.kind == "staff" or self.caller.kind == "break_glass":
            people = [user] if user else []
            if user and user.startswith("Practitioner/"):
                people += [f"PractitionerRole/{i}" for i in self._referring("PractitionerRole", "practitioner", user)]
            keys.update(people)
            for person in people:
                keys.update(f"CareTeam/{i}" for i in self._referring("CareTeam", "participant", person))
            org = self.caller.organization
            if org:
                keys.add(f"identifier|{ODS_SYSTEM}|{org}")
                orgs = [f"Organization/{i}" for system in ORGANIZATION_CODE_SYSTEMS
                        for i in self._by_identifier("Organization", system, org)]
                keys.update(orgs)
                for o in orgs:
                    keys.update(f"CareTeam/{i}" for i in self._referring("CareTeam", "participant", o))
        self._actor_keys = sorted(keys)
        return self._actor_keys

    def _referring(self, rtype: str, code: str, target: str) -> list[str]:
        """Ids of ``rtype`` resources whose reference parameter ``code`` points at ``target``."""
        ttype, _, tid = target.partition("/")
        return self._ids(rtype, code, _REFERRING, {"target_id": tid, "target_type": ttype})

    def _by_identifier(self, rtype: str, system: str, value: str) -> list[str]:
        return self._ids(rtype, "identifier", _BY_IDENTIFIER, {"code": value, "system": system})

    def _ids(self, rtype: str, code: str, statement: Select[Any], values: dict[str, Any]) -> list[str]:
        """Ids of current ``rtype`` resources with an index row for parameter ``code``."""
        param = self.registry.get(rtype, code)
        if param is None:
            return []
        return [row.id for row in self.conn.execute(statement, {"param_id": param.param_id, **values})]

    def applicable(self) -> list[ApplicableRule] | None:
        """The rules whose caller-dependent criteria (period, actor, purpose) hold now, or None
        when there are more than :data:`APPLICABLE_LIMIT` of them.

        Rules that name actors are found from the caller's actor keys; rules that name none
        from ``by_actor``. Looked up once per unit of work, so a changed Consent counts from
        the next request on.
        """
        if self._applicable_known:
            return self._applicable
        found: set[ApplicableRule] = set()
        values = {"now": self.now, "purpose": self.caller.purpose or ""}
        keys = self.actor_keys()
        statements = [(_UNNAMED_RULES, values)] + ([(_NAMED_RULES, dict(values, keys=keys))] if keys else [])
        for stmt, given in statements:
            for row in self.conn.execute(stmt, given):
                found.add(ApplicableRule(int(row.resource_pk), int(row.node), int(row.last), row.patient_id,
                                         bool(row.permit), bool(row.by_actor)))
            if len(found) > APPLICABLE_LIMIT:
                break
        self._applicable_known = True
        if len(found) > APPLICABLE_LIMIT:
            self._applicable = None
            return None
        permits = {(a.resource_pk, a.node) for a in found if a.permit}
        overriding: set[tuple[int, int]] = set()
        if permits:
            rows = self.conn.execute(_OVERRIDING, {"pks": sorted({pk for pk, _ in permits})})
            overriding = {(int(row.resource_pk), int(row.node)) for row in rows} & permits
        self._applicable = sorted(
            (replace(a, override=True) if (a.resource_pk, a.node) in overriding else a for a in found),
            key=lambda a: (a.resource_pk, a.node))
        return self._applicable

    # -- the predicate ------------------------------------------------------------------------
    def visible(self, r: FromClause, rtypes: list[str] | None = None) -> ColumnElement[bool]:
        """The predicate on the resource alias ``r``, for rows of any type.

        It names the row's type through ``r.resource_type`` rather than a literal, so
        that a query over many types (history, ``$everything``) carries it once. Given the
        types, it also names the rows the visible ones are among (:meth:`_candidates`).

        Building the expression for a caller named by many rules takes SQLAlchemy some
        milliseconds, more than the query it guards. With the caller's rules known, the
        expression depends on the caller and those rules alone, so it is built once on a
        row alias of its own and reused, joined to ``r`` by primary key, for as long as
        the same rules apply (the rules themselves are still looked up per unit of work).
        """
        rules = self.applicable()
        within = self._candidates(r, rtypes, rules)
        if not rules:
            plain = self._visible_on(r)
            return plain if within is None else and_(within, plain)
        key = (self.caller, tuple(rules), id(self.registry))
        name = getattr(r, "name", None)
        # anonymous aliases (history, includes) have a str subclass for a name, fixed only
        # when the statement is compiled: they get the expression, not the rendered text
        rkey = (*key, name, self.conn.dialect.name) if type(name) is str else None
        decided: ColumnElement[bool] | TextClause | None = _RENDERED.get(rkey) if rkey else None
        if decided is None:
            decided = self._decided(r, key, rkey)
        return and_(*([within] if within is not None else []), r.c.deleted == false(), decided)

    def _decided(self, r: FromClause, key: tuple[Any, ...],
                 rkey: tuple[Any, ...] | None) -> ColumnElement[bool] | TextClause:
        """The decision for ``r`` from the expression built once per ``key`` on a row alias of
        its own; for a named alias (``rkey``) also rendered to SQL text once, values inline
        (rule keys, patient ids and codes, escaped by SQLAlchemy's literal rendering), since
        SQLAlchemy otherwise walks the whole expression for its statement cache key and
        expands its value lists on every execution: for a caller with tens of rules that
        costs more than the query."""
        template = _TEMPLATES.get(key)
        if template is None:
            template = _TEMPLATES[key] = self._visible_on(_TEMPLATE_ROW)
        decided = exists(
            select(literal(1)).where(_TEMPLATE_ROW.c.pk == r.c.pk, template).correlate_except(_TEMPLATE_ROW))
        if rkey is None:
            return decided
        dialect = self.conn.dialect
        sql = str(select(r.c.pk).where(decided).compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        head = str(select(r.c.pk).compile(dialect=dialect)) + " \nWHERE "
        if not sql.startswith(head):
            return decided
        rendered = _RENDERED[rkey] = text(sql[len(head):])
        return rendered

    def _candidates(self, r: FromClause, rtypes: list[str] | None,
                    rules: list[ApplicableRule] | None) -> ColumnElement[bool] | None:
        """A set of rows the visible ones of ``rtypes`` are among, for the database to start
        from; None when there is none smaller than the whole type.

        A caller who does not hold the trust's records for direct care sees a record in a
        patient's compartment only when that patient's Consent permits it (or when the
        caller's own organisation is its custodian), so the rows it may see are among the
        compartments of the patients with an applicable permit, the resources of the type in
        no compartment, and the records tagged with the caller's organisation. The predicate
        itself still decides each row; this only spares the database from testing every row
        of a broad search (``ServiceRequest?status=active``) against it.
        """
        caller = self.caller
        if not rtypes or rules is None or caller.kind == "service_user":
            return None
        direct = caller.direct_care and bool(caller.organization)
        if direct and caller.organization == DEFAULT_CUSTODIAN:
            return None  # the custodian's own records: nearly everything
        out = compartment_outside.c
        of_type = out.resource_type == rtypes[0] if len(rtypes) == 1 else out.resource_type.in_(rtypes)
        parts = [select(out.resource_pk).where(of_type)]
        patients = sorted({a.patient_id for a in rules if a.permit})
        if patients:
            parts.append(select(compartment.c.resource_pk).where(compartment.c.patient_id.in_(patients)))
        if direct:
            t = token_index.c
            parts.append(select(t.resource_pk).where(t.param_id.in_(self._param_ids("_tag")),
                                                     t.system == CUSTODIAN_TAG_SYSTEM, t.code == caller.organization))
        return r.c.pk.in_(union_all(*parts) if len(parts) > 1 else parts[0])

    def _visible_on(self, r: FromClause) -> ColumnElement[bool]:
        caller = self.caller
        preds: list[ColumnElement[bool]] = [r.c.deleted == false()]
        if caller.patient_facing:
            preds.append(not_(self._labelled(r, NOT_FOR_PATIENT_LABELS)))
        if caller.kind != "service_user":
            c = compartment.alias("consent_c")
            preds.append(not_(exists(
                select(literal(1)).where(c.c.resource_pk == r.c.pk, not_(self._allowed(r, c.c.patient_id)))
                .correlate_except(c)
            )))
        return and_(*preds)

    def _param_ids(self, code: str) -> list[int]:
        """The ids of a common search parameter (``_tag``, ``_security``) over every type."""
        ids = self._param_id_cache.get(code)
        if ids is None:
            found = (self.registry.get(t, code) for t in self.registry.resource_types)
            ids = self._param_id_cache[code] = sorted({p.param_id for p in found if p is not None and p.indexed})
        return ids

    def _allowed(self, r: FromClause, patient: Any) -> ColumnElement[bool]:
        rules = self.applicable()
        if rules is not None:
            return self._allowed_by(r, patient, rules)
        return self._allowed_per_row(r, patient)

    def _allowed_by(self, r: FromClause, patient: Any, rules: list[ApplicableRule]) -> ColumnElement[bool]:
        """:meth:`_allowed_per_row` with the caller-dependent criteria already decided: only
        the ``rules`` can apply, so only their class, label and data are checked per row."""
        permits = [a for a in rules if a.permit]
        denies = [a for a in rules if not a.permit]
        direct = self.caller.direct_care and bool(self.caller.organization)
        parts: list[ColumnElement[bool]] = []
        if direct:
            named = [a for a in denies if a.by_actor]
            own = self._custodial(r)
            if named:
                own = and_(own, not_(self._decides_by(r, patient, named, rules)))
            parts.append(own)
        if permits:
            shared = self._decides_by(r, patient, permits, rules)
            if denies:
                shared = and_(shared, not_(self._decides_by(r, patient, denies, rules)))
                overrides = [a for a in permits if a.override]
                if overrides:  # an override permits despite the denials
                    shared = or_(shared, self._decides_by(r, patient, overrides, rules))
            parts.append(shared)
        if not parts:
            return false()
        return or_(*parts) if len(parts) > 1 else parts[0]

    def _decides_by(
        self, r: FromClause, patient: Any, chosen: list[ApplicableRule], rules: list[ApplicableRule]
    ) -> ColumnElement[bool]:
        """Some of the ``chosen`` rules of the patient matches ``r`` on class, label and data,
        and no applicable rule nested under it does (:meth:`_decides` for precomputed rules)."""
        n = consent_rule.alias("rule_n")
        conditions: list[ColumnElement[bool]] = [
            n.c.patient_id == patient,
            tuple_(n.c.resource_pk, n.c.node).in_([(a.resource_pk, a.node) for a in chosen]),
            self._matches_resource(r, n),
        ]
        nested = [a for a in rules if any(
            a.resource_pk == c.resource_pk and c.node < a.node <= c.last for c in chosen)]
        if nested:
            m = consent_rule.alias("rule_m")
            conditions.append(not_(exists(select(literal(1)).where(
                m.c.resource_pk == n.c.resource_pk, m.c.node > n.c.node, m.c.node <= n.c.last,
                tuple_(m.c.resource_pk, m.c.node).in_([(a.resource_pk, a.node) for a in nested]),
                self._matches_resource(r, m),
            ).correlate_except(m))))
        return exists(select(literal(1)).where(*conditions).correlate_except(n))

    def _matches_resource(self, r: FromClause, rule: FromClause) -> ColumnElement[bool]:
        """The criteria of a rule that depend on the resource: class, label and data."""
        c = rule.c
        return and_(
            or_(c.by_class == false(), self._term(r, rule, "class", lambda t: self._class_match(r, t))),
            or_(c.by_label == false(), self._term(r, rule, "label", lambda t: self._label_match(r, t))),
            or_(c.by_data == false(), self._term(r, rule, "data", lambda t: self._data_match(r, t))),
        )

    def _allowed_per_row(self, r: FromClause, patient: Any) -> ColumnElement[bool]:
        shared = or_(
            and_(self._decides(r, patient, permit=True), not_(self._decides(r, patient, permit=False))),
            self._decides(r, patient, permit=True, override_only=True),
        )
        if not self.caller.direct_care or not self.caller.organization:
            return shared
        own = and_(self._custodial(r),
                   not_(self._decides(r, patient, permit=False, named_only=True)))
        return or_(own, shared)

    def _custodial(self, r: FromClause) -> ColumnElement[bool]:
        """Whether the caller's organisation holds the record."""
        org = self.caller.organization
        t = token_index.alias("custodian_t")
        tagged = select(literal(1)).where(
            t.c.resource_pk == r.c.pk, t.c.param_id.in_(self._param_ids("_tag")), t.c.system == CUSTODIAN_TAG_SYSTEM,
        ).correlate_except(t)
        if org == DEFAULT_CUSTODIAN:
            return not_(exists(tagged.where(t.c.code != org)))
        return exists(tagged.where(t.c.code == org))

    def _labelled(self, r: FromClause, labels: tuple[tuple[str, str], ...]) -> ColumnElement[bool]:
        t = token_index.alias("label_t")
        return exists(select(literal(1)).where(
            t.c.resource_pk == r.c.pk, t.c.param_id.in_(self._param_ids("_security")),
            tuple_(t.c.system, t.c.code).in_(labels),
        ).correlate_except(t))

    def _decides(
        self, r: FromClause, patient: Any, *, permit: bool, named_only: bool = False, override_only: bool = False,
    ) -> ColumnElement[bool]:
        """Some provision of the patient's Consents of this type applies, and none under it does."""
        n = consent_rule.alias("rule_n")
        m = consent_rule.alias("rule_m")
        deeper = select(literal(1)).where(
            m.c.resource_pk == n.c.resource_pk, m.c.node > n.c.node, m.c.node <= n.c.last,
            self._applies(r, m),
        ).correlate_except(m)
        conditions = [n.c.patient_id == patient, n.c.permit == (true() if permit else false()),
                      self._applies(r, n), not_(exists(deeper))]
        if named_only:
            conditions.append(n.c.by_actor == true())
        if override_only:
            conditions.append(self._term(r, n, OVERRIDE_TERM["kind"], lambda t: t.c.value == OVERRIDE_TERM["value"]))
        return exists(select(literal(1)).where(*conditions).correlate_except(n))

    def _term(
        self, r: FromClause, rule: FromClause, kind: str, match: Callable[[FromClause], ColumnElement[bool]]
    ) -> ColumnElement[bool]:
        t = consent_term.alias(f"term_{kind}")
        return exists(select(literal(1)).where(
            t.c.resource_pk == rule.c.resource_pk, t.c.node == rule.c.node, t.c.kind == kind, match(t),
        ).correlate_except(t))

    def _applies(self, r: FromClause, rule: FromClause) -> ColumnElement[bool]:
        c = rule.c
        now = self.now
        preds = [
            or_(c.period_low.is_(None), c.period_low <= now),
            or_(c.period_high.is_(None), c.period_high >= now),
            or_(c.by_actor == false(), self._term(r, rule, "actor", lambda t: t.c.value.in_(self.actor_keys()))),
            or_(c.by_purpose == false(), self._term(r, rule, "purpose", lambda t: t.c.value == self.caller.purpose)),
            self._matches_resource(r, rule),
        ]
        return and_(*preds)

    def _class_match(self, r: FromClause, t: FromClause) -> ColumnElement[bool]:
        u = uri_index.alias("class_u")
        return or_(t.c.value == r.c.resource_type, t.c.value.in_(
            select(u.c.value).where(u.c.resource_pk == r.c.pk, u.c.param_id.in_(self._param_ids("_profile")))
            .correlate_except(u)
        ))

    def _label_match(self, r: FromClause, t: FromClause) -> ColumnElement[bool]:
        s = token_index.alias("label_s")
        return t.c.value.in_(
            select(s.c.system.concat("|").concat(s.c.code))
            .where(s.c.resource_pk == r.c.pk, s.c.param_id.in_(self._param_ids("_security"))).correlate_except(s)
        )

    def _data_match(self, r: FromClause, t: FromClause) -> ColumnElement[bool]:
        ri = reference_index.alias("data_ri")
        d = resource.alias("data_d")
        return or_(
            # meaning instance: this resource itself
            t.c.value == literal("instance|").concat(r.c.resource_type).concat("/").concat(r.c.id),
            # meaning dependents: resources that refer to the named one
            t.c.value.in_(
                select(literal("dependents|").concat(ri.c.target_type).concat("/").concat(ri.c.target_id))
                .where(ri.c.resource_pk == r.c.pk, ri.c.target_id.is_not(None)).correlate_except(ri)
            ),
            # meaning related: resources the named one refers to
            exists(select(literal(1)).select_from(ri.join(d, d.c.pk == ri.c.resource_pk)).where(
                ri.c.target_type == r.c.resource_type, ri.c.target_id == r.c.id,
                t.c.value == literal("related|").concat(d.c.resource_type).concat("/").concat(d.c.id),
            ).correlate_except(ri, d)),
        )
