"""security: versioned QA results (one current per call), forced demo-password change, tenant of parked events;
login throttling moves from per-account columns to the audit log

Revision ID: 0003_security
Revises: 0002_tickets
Create Date: 2026-12-07 02:10:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0003_security'
down_revision = '0002_tickets'
branch_labels = None
depends_on = None

_CURRENT = sa.text("superseded_at IS NULL")
_DEMO_PASSWORD = "Hotline#2026"  # domain.demo as of this revision (a migration does not follow later changes)
_DEMO_USERS = ("agent", "agent2", "qa", "km", "supervisor", "evaluator", "admin")


def upgrade() -> None:
    op.add_column('qa_results', sa.Column('version', sa.Integer(), nullable=False, server_default='1'))
    op.add_column('qa_results', sa.Column('superseded_at', sa.DateTime(timezone=True), nullable=True))
    # Calls scored more than once before this revision: the newest result stays current, older ones become
    # versions superseded when their successor was created.
    op.execute("""
        UPDATE qa_results SET
          version = 1 + (SELECT count(*) FROM qa_results o WHERE o.call_id = qa_results.call_id AND o.id < qa_results.id),
          superseded_at = (SELECT min(n.created_at) FROM qa_results n
                           WHERE n.call_id = qa_results.call_id AND n.id > qa_results.id)
        WHERE call_id IS NOT NULL""")
    op.create_index('uq_qa_results_current_call', 'qa_results', ['call_id'], unique=True,
                    sqlite_where=_CURRENT, postgresql_where=_CURRENT)

    # Plain ALTER TABLE (SQLite >= 3.35 drops columns in place): a batch copy of ``users`` would have to drop
    # the table other tables' foreign keys point at.
    op.add_column('users', sa.Column('must_change_password', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.drop_column('users', 'failed_logins')
    op.drop_column('users', 'locked_until')
    _flag_published_passwords()

    # Inbound integration requests act for the deployment's default tenant, the first one created.
    with op.batch_alter_table('parked_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tenant_id', sa.Integer(), nullable=True))
    op.execute("UPDATE parked_events SET tenant_id = (SELECT min(id) FROM tenants)")
    with op.batch_alter_table('parked_events', schema=None) as batch_op:
        batch_op.alter_column('tenant_id', existing_type=sa.Integer(), nullable=False)
        batch_op.create_index(batch_op.f('ix_parked_events_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_foreign_key('fk_parked_events_tenant_id_tenants', 'tenants', ['tenant_id'], ['id'])


def _flag_published_passwords() -> None:
    """Demo users created before this revision that still have the published demo password must change it too."""
    from argon2 import PasswordHasher
    from argon2.exceptions import InvalidHashError, VerificationError

    hasher, conn = PasswordHasher(), op.get_bind()
    users = sa.table('users', sa.column('id', sa.Integer), sa.column('username', sa.String),
                     sa.column('password_hash', sa.String), sa.column('must_change_password', sa.Boolean))
    rows = conn.execute(sa.select(users.c.id, users.c.password_hash)
                        .where(users.c.username.in_(_DEMO_USERS))).all()
    for user_id, password_hash in rows:
        try:
            hasher.verify(password_hash, _DEMO_PASSWORD)
        except (VerificationError, InvalidHashError):
            continue
        conn.execute(users.update().where(users.c.id == user_id).values(must_change_password=True))


def downgrade() -> None:
    with op.batch_alter_table('parked_events', schema=None) as batch_op:
        batch_op.drop_constraint('fk_parked_events_tenant_id_tenants', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_parked_events_tenant_id'))
        batch_op.drop_column('tenant_id')

    op.add_column('users', sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True))
    op.add_column('users', sa.Column('failed_logins', sa.Integer(), nullable=False, server_default='0'))
    op.drop_column('users', 'must_change_password')

    op.drop_index('uq_qa_results_current_call', table_name='qa_results')
    op.drop_column('qa_results', 'superseded_at')
    op.drop_column('qa_results', 'version')
