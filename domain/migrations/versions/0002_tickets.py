"""tickets and integrations: lifecycle columns, ticket numbering counters, parked out-of-order events

Revision ID: 0002_tickets
Revises: 0001
Create Date: 2026-11-24 07:55:51.502060
"""
from alembic import op
import sqlalchemy as sa


revision = '0002_tickets'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('parked_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('event_id', sa.String(length=100), nullable=False),
    sa.Column('ref', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('channel', 'event_id')
    )
    with op.batch_alter_table('parked_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_parked_events_ref'), ['ref'], unique=False)

    op.create_table('ticket_counters',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('day', sa.String(length=8), nullable=False),
    sa.Column('last', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tenant_id', 'day')
    )
    with op.batch_alter_table('ticket_counters', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ticket_counters_tenant_id'), ['tenant_id'], unique=False)

    with op.batch_alter_table('ticket_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('action', sa.String(length=24), nullable=False, server_default=''))
        batch_op.create_index(batch_op.f('ix_ticket_events_action'), ['action'], unique=False)

    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('escalation_level', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('source', sa.String(length=16), nullable=False, server_default='hotline'))
        batch_op.add_column(sa.Column('external_ref', sa.String(length=64), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('attachments', sa.JSON(), nullable=False, server_default='{}'))
        batch_op.add_column(sa.Column('sync', sa.JSON(), nullable=False, server_default='{}'))
        batch_op.add_column(sa.Column('reopen_count', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_tickets_external_ref'), ['external_ref'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tickets_external_ref'))
        batch_op.drop_column('closed_at')
        batch_op.drop_column('completed_at')
        batch_op.drop_column('reopen_count')
        batch_op.drop_column('sync')
        batch_op.drop_column('attachments')
        batch_op.drop_column('external_ref')
        batch_op.drop_column('source')
        batch_op.drop_column('escalation_level')

    with op.batch_alter_table('ticket_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ticket_events_action'))
        batch_op.drop_column('action')

    with op.batch_alter_table('ticket_counters', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ticket_counters_tenant_id'))

    op.drop_table('ticket_counters')
    with op.batch_alter_table('parked_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_parked_events_ref'))

    op.drop_table('parked_events')
