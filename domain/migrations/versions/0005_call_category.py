"""calls.category: what the copilot understood the call to be about, so calls without a ticket have a category too

Revision ID: 0005_call_category
Revises: 0004_tenant_settings
Create Date: 2026-12-08 02:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005_call_category'
down_revision = '0004_tenant_settings'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('calls') as batch:
        batch.add_column(sa.Column('category', sa.String(length=200), nullable=False, server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('calls') as batch:
        batch.drop_column('category')
