"""artifact manifest: the files an artifact is made of, with their sizes

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


def downgrade() -> None:
    with op.batch_alter_table('artifact_versions') as batch:
        batch.drop_column('manifest')
