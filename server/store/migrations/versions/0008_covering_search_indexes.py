"""Search indexes that carry ``resource_pk``, so that finding the matches of a clause reads
the index alone

A search clause becomes ``resource.pk IN (SELECT resource_pk FROM <index table> WHERE ...)``.
With ``resource_pk`` outside the index, every match cost a look-up of its row in the index
table: at 1,000,000 resources a family-name prefix with 8,000 matches took half a second
from a cold cache, where the covering index answers in 2.5 ms. Each index is rebuilt with
the same leading columns and ``resource_pk`` (and the other bound of a range) after them.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

#: index -> (table, columns before, columns after)
INDEXES = {
    "ix_token_code": ("token_index", ["param_id", "code", "system"], ["param_id", "code", "system", "resource_pk"]),
    "ix_string_norm": ("string_index", ["param_id", "norm"], ["param_id", "norm", "resource_pk"]),
    "ix_date_low": ("date_index", ["param_id", "low"], ["param_id", "low", "high", "resource_pk"]),
    "ix_date_high": ("date_index", ["param_id", "high"], ["param_id", "high", "low", "resource_pk"]),
    "ix_number_low": ("number_index", ["param_id", "low"], ["param_id", "low", "high", "resource_pk"]),
    "ix_reference_target": ("reference_index", ["param_id", "target_id", "target_type"],
                            ["param_id", "target_id", "target_type", "resource_pk"]),
    "ix_reference_url": ("reference_index", ["param_id", "url"], ["param_id", "url", "resource_pk"]),
    "ix_uri_value": ("uri_index", ["param_id", "value"], ["param_id", "value", "resource_pk"]),
}


def _rebuild(before: bool) -> None:
    for name, (table, old, new) in INDEXES.items():
        op.drop_index(name, table_name=table)
        op.create_index(name, table, old if before else new)


def upgrade() -> None:
    _rebuild(before=False)


def downgrade() -> None:
    _rebuild(before=True)
