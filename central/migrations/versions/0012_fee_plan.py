"""fee plan: a school's fee per term, monthly or per service day (issue 15, P7.2)

Revision ID: 0012_fee_plan
Revises: 0011_child_alert
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_fee_plan"
down_revision = "0011_child_alert"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fee_plan",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("term_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount_fen", sa.Integer(), nullable=False),
        sa.Column("set_by", sa.String(length=100), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["school_id"], ["school.id"]),
        sa.ForeignKeyConstraint(["term_id"], ["term.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("school_id", "term_id"),
    )
    op.create_index(op.f("ix_fee_plan_school_id"), "fee_plan", ["school_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_fee_plan_school_id"), table_name="fee_plan")
    op.drop_table("fee_plan")
