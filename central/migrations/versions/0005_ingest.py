"""incidents counted: safety_incident.count, so a flood of one kind is one row with a count

Revision ID: 0005_ingest
Revises: 0004_auth
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_ingest"
down_revision = "0004_auth"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("safety_incident", schema=None) as batch_op:
        batch_op.add_column(sa.Column("count", sa.Integer(), nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("safety_incident", schema=None) as batch_op:
        batch_op.drop_column("count")
