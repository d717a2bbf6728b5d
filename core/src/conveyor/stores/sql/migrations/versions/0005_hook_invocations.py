"""hook invocations: every run of a step's or pipeline's hook, claimed once

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('hook_invocations',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('run_id', sa.String(length=32), nullable=True),
    sa.Column('pipeline_name', sa.String(length=255), nullable=False),
    sa.Column('step_id', sa.String(length=255), nullable=False),
    sa.Column('event', sa.String(length=16), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('hook', sa.String(length=1024), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('started', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended', sa.DateTime(timezone=True), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['pipeline_runs.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('run_id', 'step_id', 'event', 'position', name='uq_hook_invocations_claim')
    )
    with op.batch_alter_table('hook_invocations', schema=None) as batch_op:
        batch_op.create_index('ix_hook_invocations_pipeline_name', ['pipeline_name'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('hook_invocations', schema=None) as batch_op:
        batch_op.drop_index('ix_hook_invocations_pipeline_name')

    op.drop_table('hook_invocations')
