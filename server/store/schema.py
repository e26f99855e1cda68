"""Tables of the store.

``resource`` holds the current version of every resource (its JSON served as stored, never
re-validated on read); ``resource_version`` holds every version, current included, for
history and vread. The search index is split by what is stored, not by resource type:
one table per value shape (token, string, date range, number range, reference, uri), each
row naming the search parameter by a stable integer id. ``compartment`` lists the patients
whose compartment a resource is in, which is what consent and ``$everything`` key on.
Index rows exist only for current, non-deleted versions and are written in the same
transaction as the resource.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

#: Integer primary keys: SQLite's rowid alias needs plain INTEGER; PostgreSQL gets BIGINT.
PK = BigInteger().with_variant(Integer(), "sqlite")

resource = Table(
    "resource",
    metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("resource_type", String(64), nullable=False),
    Column("id", String(64), nullable=False),
    Column("version_id", Integer, nullable=False),
    #: microseconds since the epoch (UTC), the same instant as meta.lastUpdated
    Column("last_updated", BigInteger, nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    #: the current version's JSON (UTF-8 bytes); NULL once deleted
    Column("content", LargeBinary, nullable=True),
    UniqueConstraint("resource_type", "id", name="uq_resource_type_id"),
)
Index("ix_resource_type_updated", resource.c.resource_type, resource.c.last_updated)
Index("ix_resource_type_pk", resource.c.resource_type, resource.c.pk)

resource_version = Table(
    "resource_version",
    metadata,
    Column("resource_pk", PK, primary_key=True),
    Column("version_id", Integer, primary_key=True),
    Column("resource_type", String(64), nullable=False),
    Column("id", String(64), nullable=False),
    Column("last_updated", BigInteger, nullable=False),
    #: POST, PUT, PATCH or DELETE: what made this version (history entries show it)
    Column("method", String(8), nullable=False),
    Column("content", LargeBinary, nullable=True),
    #: who wrote it (client and user from the access context), for provenance of edits
    Column("author", String(256), nullable=True),
)
Index("ix_version_updated", resource_version.c.last_updated)
Index("ix_version_type_updated", resource_version.c.resource_type, resource_version.c.last_updated)

token_index = Table(
    "token_index",
    metadata,
    Column("resource_pk", PK, nullable=False),
    Column("param_id", Integer, nullable=False),
    Column("system", String(256), nullable=True),
    Column("code", String(256), nullable=True),
    #: display/text, normalised, for the :text modifier
    Column("text", String(256), nullable=True),
)
Index("ix_token_code", token_index.c.param_id, token_index.c.code, token_index.c.system, token_index.c.resource_pk)
Index("ix_token_pk", token_index.c.resource_pk)

string_index = Table(
    "string_index",
    metadata,
    Column("resource_pk", PK, nullable=False),
    Column("param_id", Integer, nullable=False),
    #: case and accent folded, for the default starts-with match
    Column("norm", String(256), nullable=False),
    #: as written, for :exact
    Column("value", String(256), nullable=False),
)
Index("ix_string_norm", string_index.c.param_id, string_index.c.norm, string_index.c.resource_pk)
Index("ix_string_pk", string_index.c.resource_pk)

date_index = Table(
    "date_index",
    metadata,
    Column("resource_pk", PK, nullable=False),
    Column("param_id", Integer, nullable=False),
    Column("low", BigInteger, nullable=False),
    Column("high", BigInteger, nullable=False),
)
Index("ix_date_low", date_index.c.param_id, date_index.c.low, date_index.c.high, date_index.c.resource_pk)
Index("ix_date_high", date_index.c.param_id, date_index.c.high, date_index.c.low, date_index.c.resource_pk)
Index("ix_date_pk", date_index.c.resource_pk)

number_index = Table(
    "number_index",
    metadata,
    Column("resource_pk", PK, nullable=False),
    Column("param_id", Integer, nullable=False),
    Column("low", Float, nullable=False),
    Column("high", Float, nullable=False),
    #: for quantities: the unit's system and code
    Column("system", String(256), nullable=True),
    Column("code", String(64), nullable=True),
)
Index("ix_number_low", number_index.c.param_id, number_index.c.low, number_index.c.high, number_index.c.resource_pk)
Index("ix_number_pk", number_index.c.resource_pk)

reference_index = Table(
    "reference_index",
    metadata,
    Column("resource_pk", PK, nullable=False),
    Column("param_id", Integer, nullable=False),
    Column("target_type", String(64), nullable=True),
    Column("target_id", String(64), nullable=True),
    #: absolute or canonical references that are not local Type/id
    Column("url", String(512), nullable=True),
)
Index("ix_reference_target", reference_index.c.param_id, reference_index.c.target_id, reference_index.c.target_type,
      reference_index.c.resource_pk)
Index("ix_reference_url", reference_index.c.param_id, reference_index.c.url, reference_index.c.resource_pk)
Index("ix_reference_pk", reference_index.c.resource_pk)

uri_index = Table(
    "uri_index",
    metadata,
    Column("resource_pk", PK, nullable=False),
    Column("param_id", Integer, nullable=False),
    Column("value", String(512), nullable=False),
)
Index("ix_uri_value", uri_index.c.param_id, uri_index.c.value, uri_index.c.resource_pk)
Index("ix_uri_pk", uri_index.c.resource_pk)

compartment = Table(
    "compartment",
    metadata,
    Column("resource_pk", PK, nullable=False),
    Column("patient_id", String(64), nullable=False),
)
Index("ix_compartment_patient", compartment.c.patient_id, compartment.c.resource_pk)
#: (resource, patient) covers the consent check of a row without reading the table (0005)
Index("ix_compartment_pk_patient", compartment.c.resource_pk, compartment.c.patient_id)

#: The resources in no patient's compartment (directory data, and records about a Group or a
#: Location rather than a person), one row each, written with the index rows. They are
#: visible to every caller, so the consent predicate can offer the database a driving set:
#: "the compartments of the patients whose Consents share with me, and these" (0007).
compartment_outside = Table(
    "compartment_outside",
    metadata,
    Column("resource_pk", PK, primary_key=True, autoincrement=False),
    Column("resource_type", String(64), nullable=False),
)
Index("ix_compartment_outside_type", compartment_outside.c.resource_type, compartment_outside.c.resource_pk)

#: The active privacy Consents, flattened into rules the access predicate joins (see
#: server/consent/rules.py). One row per provision, numbered in pre-order so that the
#: provisions nested under ``node`` are exactly those with ``node < n <= last``.
#: Criteria of one provision and of all its ancestors are intersected into its row and
#: its ``consent_term`` rows, so a row alone says whether it applies. Rows are written in
#: the same transaction as the Consent, so a change takes effect on the next request.
consent_rule = Table(
    "consent_rule",
    metadata,
    Column("resource_pk", PK, nullable=False),
    Column("patient_id", String(64), nullable=False),
    Column("node", Integer, nullable=False),
    Column("last", Integer, nullable=False),
    Column("permit", Boolean, nullable=False),
    #: microseconds since the epoch; NULL for an open end
    Column("period_low", BigInteger, nullable=True),
    Column("period_high", BigInteger, nullable=True),
    #: whether the provision is limited by actor / purpose / class / security label / data
    Column("by_actor", Boolean, nullable=False),
    Column("by_purpose", Boolean, nullable=False),
    Column("by_class", Boolean, nullable=False),
    Column("by_label", Boolean, nullable=False),
    Column("by_data", Boolean, nullable=False),
)
Index("ix_consent_rule_patient", consent_rule.c.patient_id, consent_rule.c.resource_pk, consent_rule.c.node)
Index("ix_consent_rule_pk", consent_rule.c.resource_pk)
#: the rules that name no actor, which apply to every caller (0005)
Index("ix_consent_rule_unnamed", consent_rule.c.by_actor, consent_rule.c.resource_pk, consent_rule.c.node)

#: The values a consent rule is limited to, one row per value (kind: actor, purpose,
#: class, label, data), and its effect where it has one beyond permit or deny (kind
#: ``effect``, value ``override``: a permit that overrides the service user's refusals).
consent_term = Table(
    "consent_term",
    metadata,
    Column("resource_pk", PK, nullable=False),
    Column("node", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("value", String(512), nullable=False),
)
Index("ix_consent_term_rule", consent_term.c.resource_pk, consent_term.c.node, consent_term.c.kind,
      consent_term.c.value)
#: from a caller's actor keys to the rules that name them (0005)
Index("ix_consent_term_value", consent_term.c.kind, consent_term.c.value, consent_term.c.resource_pk,
      consent_term.c.node)

#: Clients registered for SMART Backend Services (server/auth/clients.py). The list
#: columns hold JSON arrays; ``jwks`` holds the client's public JSON Web Key Set.
auth_client = Table(
    "auth_client",
    metadata,
    Column("client_id", String(128), primary_key=True),
    Column("name", String(256), nullable=False),
    #: active or disabled
    Column("status", String(16), nullable=False),
    Column("jwks", Text, nullable=True),
    Column("jwks_uri", String(1024), nullable=True),
    #: ODS code of the organisation the client acts for
    Column("organization", String(16), nullable=False),
    Column("scopes", Text, nullable=False),
    Column("purposes", Text, nullable=False),
    Column("may_assert", Text, nullable=False),
    #: microseconds since the epoch (UTC)
    Column("created", BigInteger, nullable=False),
    Column("updated", BigInteger, nullable=False),
)

#: ``jti`` values of client assertions already used, kept until the assertion expires so
#: that a replay is refused by every worker.
auth_assertion_jti = Table(
    "auth_assertion_jti",
    metadata,
    Column("client_id", String(128), primary_key=True),
    Column("jti", String(256), primary_key=True),
    #: seconds since the epoch after which the row may be pruned
    Column("expires_at", BigInteger, nullable=False),
)
Index("ix_auth_assertion_jti_expires", auth_assertion_jti.c.expires_at)

#: AuditEvents stored but not yet indexed (the audit store only): the trail appends each batch
#: here, cheaply, while requests are being served, and indexes it when the server has time or
#: as soon as anyone searches the trail (server/audit/store.py).
audit_journal = Table(
    "audit_journal",
    metadata,
    Column("seq", PK, primary_key=True, autoincrement=True),
    #: the AuditEvent's JSON, without id and meta (given when it is indexed)
    Column("content", LargeBinary, nullable=False),
)

#: What the index was built from, so that a changed SearchParameter is noticed and reindexed.
search_param_state = Table(
    "search_param_state",
    metadata,
    Column("param_id", Integer, primary_key=True),
    Column("resource_type", String(64), nullable=False),
    Column("code", String(128), nullable=False),
    Column("expression_hash", String(64), nullable=False),
)

INDEX_TABLES = {
    "token": token_index,
    "string": string_index,
    "date": date_index,
    "number": number_index,
    "reference": reference_index,
    "uri": uri_index,
}
