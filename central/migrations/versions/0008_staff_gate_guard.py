"""staff gate_guard: the school lets a staff member sign in at a gate kiosk as the guard on duty

Staff of kind ``guard`` always may; ``gate_guard`` lets the school allow anyone else. Existing rows
are not allowed (false).

Revision ID: 0008_staff_gate_guard
Revises: 0007_link_check
"""

import sqlalchemy as sa
from alembic import op


revision = "0008_staff_gate_guard"
down_revision = "0007_link_check"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.add_column(sa.Column("gate_guard", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.drop_column("gate_guard")
