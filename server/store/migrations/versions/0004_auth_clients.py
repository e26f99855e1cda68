"""Client registry for SMART Backend Services, and used client-assertion ids (replay guard)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auth_client",
        sa.Column("client_id", sa.String(128), primary_key=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("jwks", sa.Text(), nullable=True),
        sa.Column("jwks_uri", sa.String(1024), nullable=True),
        sa.Column("organization", sa.String(16), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("purposes", sa.Text(), nullable=False),
        sa.Column("may_assert", sa.Text(), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("updated", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "auth_assertion_jti",
        sa.Column("client_id", sa.String(128), primary_key=True),
        sa.Column("jti", sa.String(256), primary_key=True),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_auth_assertion_jti_expires", "auth_assertion_jti", ["expires_at"])


def downgrade() -> None:
    op.drop_table("auth_assertion_jti")
    op.drop_table("auth_client")
