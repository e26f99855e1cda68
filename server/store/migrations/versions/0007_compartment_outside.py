"""The resources in no patient's compartment, listed for the consent predicate to drive from

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "compartment_outside",
        sa.Column("resource_pk", PK, primary_key=True, autoincrement=False),
        sa.Column("resource_type", sa.String(64), nullable=False),
    )
    op.create_index("ix_compartment_outside_type", "compartment_outside", ["resource_type", "resource_pk"])
    # every live resource but a Patient (always in its own compartment) that has no compartment row
    op.execute(
        "INSERT INTO compartment_outside (resource_pk, resource_type) "
        "SELECT r.pk, r.resource_type FROM resource r WHERE r.deleted = false AND r.resource_type <> 'Patient' "
        "AND NOT EXISTS (SELECT 1 FROM compartment c WHERE c.resource_pk = r.pk)"
    )


def downgrade() -> None:
    op.drop_index("ix_compartment_outside_type", table_name="compartment_outside")
    op.drop_table("compartment_outside")
