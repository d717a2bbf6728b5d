"""artifact manifests (the files an artifact is made of, with their sizes); flavor install commands

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('artifact_versions') as batch:
        batch.add_column(sa.Column('manifest', sa.JSON(), nullable=True))
    with op.batch_alter_table('stack_components') as batch:
        batch.add_column(sa.Column('install', sa.String(length=1024), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('stack_components') as batch:
        batch.drop_column('install')
    with op.batch_alter_table('artifact_versions') as batch:
        batch.drop_column('manifest')
