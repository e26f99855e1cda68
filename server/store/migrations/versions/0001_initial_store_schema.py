"""initial store schema

Revision ID: 0001
Revises: 
Create Date: 2026-12-02
"""

from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('compartment',
    sa.Column('resource_pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('patient_id', sa.String(length=64), nullable=False)
    )
    with op.batch_alter_table('compartment', schema=None) as batch_op:
        batch_op.create_index('ix_compartment_patient', ['patient_id', 'resource_pk'], unique=False)
        batch_op.create_index('ix_compartment_pk', ['resource_pk'], unique=False)

    op.create_table('date_index',
    sa.Column('resource_pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('param_id', sa.Integer(), nullable=False),
    sa.Column('low', sa.BigInteger(), nullable=False),
    sa.Column('high', sa.BigInteger(), nullable=False)
    )
    with op.batch_alter_table('date_index', schema=None) as batch_op:
        batch_op.create_index('ix_date_high', ['param_id', 'high'], unique=False)
        batch_op.create_index('ix_date_low', ['param_id', 'low'], unique=False)
        batch_op.create_index('ix_date_pk', ['resource_pk'], unique=False)

    op.create_table('number_index',
    sa.Column('resource_pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('param_id', sa.Integer(), nullable=False),
    sa.Column('low', sa.Float(), nullable=False),
    sa.Column('high', sa.Float(), nullable=False),
    sa.Column('system', sa.String(length=256), nullable=True),
    sa.Column('code', sa.String(length=64), nullable=True)
    )
    with op.batch_alter_table('number_index', schema=None) as batch_op:
        batch_op.create_index('ix_number_low', ['param_id', 'low'], unique=False)
        batch_op.create_index('ix_number_pk', ['resource_pk'], unique=False)

    op.create_table('reference_index',
    sa.Column('resource_pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('param_id', sa.Integer(), nullable=False),
    sa.Column('target_type', sa.String(length=64), nullable=True),
    sa.Column('target_id', sa.String(length=64), nullable=True),
    sa.Column('url', sa.String(length=512), nullable=True)
    )
    with op.batch_alter_table('reference_index', schema=None) as batch_op:
        batch_op.create_index('ix_reference_pk', ['resource_pk'], unique=False)
        batch_op.create_index('ix_reference_target', ['param_id', 'target_id', 'target_type'], unique=False)
        batch_op.create_index('ix_reference_url', ['param_id', 'url'], unique=False)

    op.create_table('resource',
    sa.Column('pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('last_updated', sa.BigInteger(), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=True),
    sa.PrimaryKeyConstraint('pk'),
    sa.UniqueConstraint('resource_type', 'id', name='uq_resource_type_id')
    )
    with op.batch_alter_table('resource', schema=None) as batch_op:
        batch_op.create_index('ix_resource_type_updated', ['resource_type', 'last_updated'], unique=False)

    op.create_table('resource_version',
    sa.Column('resource_pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('last_updated', sa.BigInteger(), nullable=False),
    sa.Column('method', sa.String(length=8), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=True),
    sa.Column('author', sa.String(length=256), nullable=True),
    sa.PrimaryKeyConstraint('resource_pk', 'version_id')
    )
    with op.batch_alter_table('resource_version', schema=None) as batch_op:
        batch_op.create_index('ix_version_type_updated', ['resource_type', 'last_updated'], unique=False)
        batch_op.create_index('ix_version_updated', ['last_updated'], unique=False)

    op.create_table('search_param_state',
    sa.Column('param_id', sa.Integer(), nullable=False),
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('code', sa.String(length=128), nullable=False),
    sa.Column('expression_hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('param_id')
    )
    op.create_table('string_index',
    sa.Column('resource_pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('param_id', sa.Integer(), nullable=False),
    sa.Column('norm', sa.String(length=256), nullable=False),
    sa.Column('value', sa.String(length=256), nullable=False)
    )
    with op.batch_alter_table('string_index', schema=None) as batch_op:
        batch_op.create_index('ix_string_norm', ['param_id', 'norm'], unique=False)
        batch_op.create_index('ix_string_pk', ['resource_pk'], unique=False)

    op.create_table('token_index',
    sa.Column('resource_pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('param_id', sa.Integer(), nullable=False),
    sa.Column('system', sa.String(length=256), nullable=True),
    sa.Column('code', sa.String(length=256), nullable=True),
    sa.Column('text', sa.String(length=256), nullable=True)
    )
    with op.batch_alter_table('token_index', schema=None) as batch_op:
        batch_op.create_index('ix_token_code', ['param_id', 'code', 'system'], unique=False)
        batch_op.create_index('ix_token_pk', ['resource_pk'], unique=False)

    op.create_table('uri_index',
    sa.Column('resource_pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('param_id', sa.Integer(), nullable=False),
    sa.Column('value', sa.String(length=512), nullable=False)
    )
    with op.batch_alter_table('uri_index', schema=None) as batch_op:
        batch_op.create_index('ix_uri_pk', ['resource_pk'], unique=False)
        batch_op.create_index('ix_uri_value', ['param_id', 'value'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('uri_index', schema=None) as batch_op:
        batch_op.drop_index('ix_uri_value')
        batch_op.drop_index('ix_uri_pk')

    op.drop_table('uri_index')
    with op.batch_alter_table('token_index', schema=None) as batch_op:
        batch_op.drop_index('ix_token_pk')
        batch_op.drop_index('ix_token_code')

    op.drop_table('token_index')
    with op.batch_alter_table('string_index', schema=None) as batch_op:
        batch_op.drop_index('ix_string_pk')
        batch_op.drop_index('ix_string_norm')

    op.drop_table('string_index')
    op.drop_table('search_param_state')
    with op.batch_alter_table('resource_version', schema=None) as batch_op:
        batch_op.drop_index('ix_version_updated')
        batch_op.drop_index('ix_version_type_updated')

    op.drop_table('resource_version')
    with op.batch_alter_table('resource', schema=None) as batch_op:
        batch_op.drop_index('ix_resource_type_updated')

    op.drop_table('resource')
    with op.batch_alter_table('reference_index', schema=None) as batch_op:
        batch_op.drop_index('ix_reference_url')
        batch_op.drop_index('ix_reference_target')
        batch_op.drop_index('ix_reference_pk')

    op.drop_table('reference_index')
    with op.batch_alter_table('number_index', schema=None) as batch_op:
        batch_op.drop_index('ix_number_pk')
        batch_op.drop_index('ix_number_low')

    op.drop_table('number_index')
    with op.batch_alter_table('date_index', schema=None) as batch_op:
        batch_op.drop_index('ix_date_pk')
        batch_op.drop_index('ix_date_low')
        batch_op.drop_index('ix_date_high')

    op.drop_table('date_index')
    with op.batch_alter_table('compartment', schema=None) as batch_op:
        batch_op.drop_index('ix_compartment_pk')
        batch_op.drop_index('ix_compartment_patient')

    op.drop_table('compartment')
