"""staff pay: the school's share setting, confirmations of planned duty, pay runs and their lines (issue 15, P8.1)

Revision ID: 0013_staff_pay
Revises: 0012_fee_plan
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_staff_pay"
down_revision = "0012_fee_plan"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "staff_pay_setting",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("share_percent", sa.Integer(), nullable=False),
        sa.Column("volunteer_allowance_fen", sa.Integer(), nullable=False),
        sa.Column("set_by", sa.String(length=100), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["school_id"], ["school.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("school_id"),
    )
    op.create_table(
        "duty_confirmation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("confirmed_by", sa.String(length=100), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["school_id"], ["school.id"]),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("staff_id", "day"),
    )
    op.create_index(op.f("ix_duty_confirmation_school_id"), "duty_confirmation", ["school_id"], unique=False)
    op.create_index(op.f("ix_duty_confirmation_staff_id"), "duty_confirmation", ["staff_id"], unique=False)
    op.create_table(
        "staff_pay_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("fee_income_fen", sa.Integer(), nullable=False),
        sa.Column("subsidy_fen", sa.Integer(), nullable=False),
        sa.Column("share_percent", sa.Integer(), nullable=False),
        sa.Column("pool_fen", sa.Integer(), nullable=False),
        sa.Column("periods", sa.Integer(), nullable=False),
        sa.Column("allowance_fen", sa.Integer(), nullable=False),
        sa.Column("made_by", sa.String(length=100), nullable=False),
        sa.Column("made_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_by", sa.String(length=100), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["school_id"], ["school.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("school_id", "month"),
    )
    op.create_index(op.f("ix_staff_pay_run_school_id"), "staff_pay_run", ["school_id"], unique=False)
    op.create_table(
        "staff_pay_line",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("periods_tapped", sa.Integer(), nullable=False),
        sa.Column("periods_confirmed", sa.Integer(), nullable=False),
        sa.Column("share_fen", sa.Integer(), nullable=False),
        sa.Column("allowance_fen", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["staff_pay_run.id"]),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_staff_pay_line_run_id"), "staff_pay_line", ["run_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_staff_pay_line_run_id"), table_name="staff_pay_line")
    op.drop_table("staff_pay_line")
    op.drop_index(op.f("ix_staff_pay_run_school_id"), table_name="staff_pay_run")
    op.drop_table("staff_pay_run")
    op.drop_index(op.f("ix_duty_confirmation_staff_id"), table_name="duty_confirmation")
    op.drop_index(op.f("ix_duty_confirmation_school_id"), table_name="duty_confirmation")
    op.drop_table("duty_confirmation")
    op.drop_table("staff_pay_setting")
