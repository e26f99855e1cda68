"""Indexes for the consent decision at scale: the rules naming an actor, the rules naming none,
and each resource's compartment patients without a table look-up

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_consent_term_value", "consent_term", ["kind", "value", "resource_pk", "node"])
    op.create_index("ix_consent_rule_unnamed", "consent_rule", ["by_actor", "resource_pk", "node"])
    op.create_index("ix_compartment_pk_patient", "compartment", ["resource_pk", "patient_id"])
    op.drop_index("ix_compartment_pk", table_name="compartment")


def downgrade() -> None:
    op.create_index("ix_compartment_pk", "compartment", ["resource_pk"])
    op.drop_index("ix_compartment_pk_patient", table_name="compartment")
    op.drop_index("ix_consent_rule_unnamed", table_name="consent_rule")
    op.drop_index("ix_consent_term_value", table_name="consent_term")
