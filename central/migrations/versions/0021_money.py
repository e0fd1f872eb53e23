"""money: staff pay for a term as well as a month (P8.1) — ``staff_pay_run.term_id``, ``month`` left
empty on a term's run (issue 15)

Revision ID: 0021_money
Revises: 0019_safety
"""

import sqlalchemy as sa
from alembic import op

revision = "0021_money"
down_revision = "0019_safety"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("staff_pay_run", schema=None) as batch_op:
        batch_op.add_column(sa.Column("term_id", sa.Integer(), nullable=True))
        batch_op.alter_column("month", existing_type=sa.String(length=7), nullable=True)
        batch_op.create_foreign_key("fk_staff_pay_run_term_id_term", "term", ["term_id"], ["id"])
        batch_op.create_unique_constraint("uq_staff_pay_run_school_id_term_id", ["school_id", "term_id"])


def downgrade() -> None:
    op.execute("DELETE FROM staff_pay_line WHERE run_id IN (SELECT id FROM staff_pay_run WHERE term_id IS NOT NULL)")
    op.execute("DELETE FROM staff_pay_run WHERE term_id IS NOT NULL")
    with op.batch_alter_table("staff_pay_run", schema=None) as batch_op:
        batch_op.drop_constraint("uq_staff_pay_run_school_id_term_id", type_="unique")
        batch_op.drop_constraint("fk_staff_pay_run_term_id_term", type_="foreignkey")
        batch_op.alter_column("month", existing_type=sa.String(length=7), nullable=False)
        batch_op.drop_column("term_id")
