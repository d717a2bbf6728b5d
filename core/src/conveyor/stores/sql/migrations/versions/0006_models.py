"""models, model versions, aliases with their history, links to runs, steps and artifacts; metadata logged by steps

Revision ID: 0006
Revises: 0004

Existing runs, steps and artifacts are kept as they are: their steps logged nothing
(the new step_runs.metadata column is NULL) and they belong to no model version.

On MySQL/MariaDB, pipeline_runs.pid_started becomes a DOUBLE: a FLOAT there is single
precision, so the start time of a live driver read back wrong and other processes took
its run for one whose driver had died.
"""

import sqlalchemy as sa
from alembic import op


revision = '0006'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('models',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('license', sa.String(length=255), nullable=True),
    sa.Column('latest_version', sa.Integer(), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('model_versions',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('model_id', sa.String(length=32), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=True),
    sa.Column('run_id', sa.String(length=32), nullable=True),
    sa.Column('creation_key', sa.String(length=255), nullable=True),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ),
    sa.ForeignKeyConstraint(['run_id'], ['pipeline_runs.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('model_id', 'creation_key', name='uq_model_versions_model_key'),
    sa.UniqueConstraint('model_id', 'name', name='uq_model_versions_model_name'),
    sa.UniqueConstraint('model_id', 'number', name='uq_model_versions_model_number')
    )
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_model_versions_run_id'), ['run_id'], unique=False)

    op.create_table('model_alias_events',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('model_id', sa.String(length=32), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('alias', sa.String(length=255), nullable=False),
    sa.Column('from_version_id', sa.String(length=32), nullable=True),
    sa.Column('to_version_id', sa.String(length=32), nullable=True),
    sa.Column('moved_by', sa.String(length=255), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['from_version_id'], ['model_versions.id'], ),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ),
    sa.ForeignKeyConstraint(['to_version_id'], ['model_versions.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('model_id', 'seq', name='uq_model_alias_events_model_seq')
    )

    op.create_table('model_aliases',
    sa.Column('model_id', sa.String(length=32), nullable=False),
    sa.Column('alias', sa.String(length=255), nullable=False),
    sa.Column('model_version_id', sa.String(length=32), nullable=False),
    sa.Column('updated', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_versions.id'], ),
    sa.PrimaryKeyConstraint('model_id', 'alias')
    )
    with op.batch_alter_table('model_aliases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_model_aliases_model_version_id'), ['model_version_id'], unique=False)

    op.create_table('model_version_links',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('model_version_id', sa.String(length=32), nullable=False),
    sa.Column('run_id', sa.String(length=32), nullable=False),
    sa.Column('step_run_id', sa.String(length=32), nullable=True),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('artifact_id', sa.String(length=32), nullable=True),
    sa.Column('name', sa.String(length=255), nullable=True),
    sa.Column('metadata', sa.JSON(), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['artifact_id'], ['artifact_versions.id'], ),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_versions.id'], ),
    sa.ForeignKeyConstraint(['run_id'], ['pipeline_runs.id'], ),
    sa.ForeignKeyConstraint(['step_run_id'], ['step_runs.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('model_version_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_model_version_links_model_version_id'), ['model_version_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_model_version_links_run_id'), ['run_id'], unique=False)

    with op.batch_alter_table('step_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('metadata', sa.JSON(), nullable=True))

    if op.get_bind().dialect.name in ('mysql', 'mariadb'):
        op.alter_column('pipeline_runs', 'pid_started', type_=sa.Double(), existing_type=sa.Float(), existing_nullable=True)



def downgrade() -> None:
    if op.get_bind().dialect.name in ('mysql', 'mariadb'):
        op.alter_column('pipeline_runs', 'pid_started', type_=sa.Float(), existing_type=sa.Double(), existing_nullable=True)
    # Dropping a table drops its indexes; MySQL refuses to drop an index a foreign key needs first.
    with op.batch_alter_table('step_runs', schema=None) as batch_op:
        batch_op.drop_column('metadata')
    op.drop_table('model_version_links')
    op.drop_table('model_aliases')
    op.drop_table('model_alias_events')
    op.drop_table('model_versions')
    op.drop_table('models')
