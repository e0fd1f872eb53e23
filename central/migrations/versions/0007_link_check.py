"""link check: a guardian link is never both barred and allowed to pick up (P9.4), in the database too

Existing rows that say both are first made what the kiosks already did with them (a bar wins: the
gate refuses a barred guardian whatever ``may_pick_up`` says), then the CHECK is added. On SQLite
the table is copied (batch mode); a named CHECK is carried over by later batch copies.

Revision ID: 0007_link_check
Revises: 0006_custody
"""

from alembic import op


revision = "0007_link_check"
down_revision = "0006_custody"
branch_labels = None
depends_on = None

NAME = "guardian_link_barred_no_pickup"


def upgrade() -> None:
    op.execute("UPDATE guardian_link SET may_pick_up = false WHERE barred = true AND may_pick_up = true")
    with op.batch_alter_table("guardian_link", schema=None) as batch_op:
        batch_op.create_check_constraint(NAME, "NOT (barred AND may_pick_up)")


def downgrade() -> None:
    # The rows fixed on the way up stay fixed: which of them said both is not kept.
    with op.batch_alter_table("guardian_link", schema=None) as batch_op:
        batch_op.drop_constraint(NAME, type_="check")
