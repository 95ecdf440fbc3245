"""tenant settings: each tenant's lexicon, districts and gazetteer, contract numbers, time zone and working hours

Revision ID: 0004_tenant_settings
Revises: 0003_security
Create Date: 2026-12-07 05:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004_tenant_settings'
down_revision = '0003_security'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'tenant_settings',
        sa.Column('tenant_id', sa.Integer(), nullable=False),
        sa.Column('data', sa.JSON(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id']),
        sa.PrimaryKeyConstraint('tenant_id'),
    )


def downgrade() -> None:
    op.drop_table('tenant_settings')
