"""run tags; where each artifact was made (pipeline, step) and when its files were removed; run times to the
microsecond on MySQL/MariaDB

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('run_tags',
    sa.Column('run_id', sa.String(length=32), nullable=False),
    sa.Column('tag', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['pipeline_runs.id'], ),
    sa.PrimaryKeyConstraint('run_id', 'tag')
    )
    with op.batch_alter_table('run_tags', schema=None) as batch_op:
        batch_op.create_index('ix_run_tags_tag', ['tag'], unique=False)

    with op.batch_alter_table('artifact_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pipeline_name', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('step_id', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('removed', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_artifact_versions_pipeline_name'), ['pipeline_name'], unique=False)

    if op.get_bind().dialect.name in ('mysql', 'mariadb'):
        # Whole seconds made runs started in the same second tie: "latest" must be the newest.
        op.alter_column('pipeline_runs', 'created', type_=mysql.DATETIME(fsp=6), existing_nullable=False)

    # Artifacts made before: their pipeline and step from the step run that produced them.
    op.execute(
        "UPDATE artifact_versions SET "
        "pipeline_name = (SELECT pipelines.name FROM step_runs "
        "JOIN pipeline_runs ON pipeline_runs.id = step_runs.run_id "
        "JOIN pipelines ON pipelines.id = pipeline_runs.pipeline_id "
        "WHERE step_runs.id = artifact_versions.producer_step_run_id), "
        "step_id = (SELECT step_runs.step_id FROM step_runs WHERE step_runs.id = artifact_versions.producer_step_run_id) "
        "WHERE producer_step_run_id IS NOT NULL"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name in ('mysql', 'mariadb'):
        op.alter_column('pipeline_runs', 'created', type_=sa.DateTime(timezone=True), existing_nullable=False)
    with op.batch_alter_table('artifact_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_artifact_versions_pipeline_name'))
        batch_op.drop_column('removed')
        batch_op.drop_column('step_id')
        batch_op.drop_column('pipeline_name')

    with op.batch_alter_table('run_tags', schema=None) as batch_op:
        batch_op.drop_index('ix_run_tags_tag')

    op.drop_table('run_tags')
