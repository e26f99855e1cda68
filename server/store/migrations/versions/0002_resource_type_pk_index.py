"""Index resources by type in key order

A search whose clauses all match many resources walks its type in key order and stops
after a page; this index makes that walk an index range instead of a scan and a sort.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_resource_type_pk", "resource", ["resource_type", "pk"])


def downgrade() -> None:
    op.drop_index("ix_resource_type_pk", table_name="resource")
