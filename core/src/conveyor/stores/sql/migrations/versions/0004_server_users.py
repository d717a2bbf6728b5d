"""a conveyor server's users, service accounts, credentials and failed logins

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'server_users',
        sa.Column('id', sa.String(32), primary_key=True),
        sa.Column('name', sa.String(255), nullable=False, unique=True),
        sa.Column('kind', sa.String(16), nullable=False),
        sa.Column('role', sa.String(16), nullable=False),
        sa.Column('password_hash', sa.String(255), nullable=True),
        sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        'server_credentials',
        sa.Column('id', sa.String(32), primary_key=True),
        sa.Column('token_hash', sa.String(64), nullable=False, unique=True),
        sa.Column('kind', sa.String(16), nullable=False),
        sa.Column('user_id', sa.String(32), sa.ForeignKey('server_users.id'), nullable=False),
        sa.Column('run_id', sa.String(32), nullable=True),
        sa.Column('created', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires', sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index('ix_server_credentials_user_id', 'server_credentials', ['user_id'])
    op.create_index('ix_server_credentials_run_id', 'server_credentials', ['run_id'])
    op.create_table(
        'server_login_failures',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('username', sa.String(255), nullable=False),
        sa.Column('address', sa.String(64), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index('ix_server_login_failures_username', 'server_login_failures', ['username'])
    op.create_index('ix_server_login_failures_address', 'server_login_failures', ['address'])


def downgrade() -> None:
    op.drop_table('server_login_failures')
    op.drop_table('server_credentials')
    op.drop_table('server_users')
