"""Consent rules: active privacy Consents flattened for the access predicate

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "consent_rule",
        sa.Column("resource_pk", PK, nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("node", sa.Integer(), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.Column("permit", sa.Boolean(), nullable=False),
        sa.Column("period_low", sa.BigInteger(), nullable=True),
        sa.Column("period_high", sa.BigInteger(), nullable=True),
        sa.Column("by_actor", sa.Boolean(), nullable=False),
        sa.Column("by_purpose", sa.Boolean(), nullable=False),
        sa.Column("by_class", sa.Boolean(), nullable=False),
        sa.Column("by_label", sa.Boolean(), nullable=False),
        sa.Column("by_data", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_consent_rule_patient", "consent_rule", ["patient_id", "resource_pk", "node"])
    op.create_index("ix_consent_rule_pk", "consent_rule", ["resource_pk"])
    op.create_table(
        "consent_term",
        sa.Column("resource_pk", PK, nullable=False),
        sa.Column("node", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("value", sa.String(512), nullable=False),
    )
    op.create_index("ix_consent_term_rule", "consent_term", ["resource_pk", "node", "kind", "value"])


def downgrade() -> None:
    op.drop_table("consent_term")
    op.drop_table("consent_rule")
