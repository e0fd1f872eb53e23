"""statements and payments: a child's bill for a month, the money received, matched by reference (issue 15, P7)

Revision ID: 0016_statement
Revises: 0015_annual_filing
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_statement"
down_revision = "0015_annual_filing"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "statement",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("student_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("reference", sa.String(length=32), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("term_id", sa.Integer(), nullable=False),
        sa.Column("plan_kind", sa.String(length=16), nullable=False),
        sa.Column("plan_amount_fen", sa.Integer(), nullable=False),
        sa.Column("cap_fen", sa.Integer(), nullable=False),
        sa.Column("service_days", sa.Integer(), nullable=False),
        sa.Column("days_in_service", sa.Integer(), nullable=False),
        sa.Column("days_attended", sa.Integer(), nullable=False),
        sa.Column("exempt", sa.Boolean(), nullable=False),
        sa.Column("charge_fen", sa.Integer(), nullable=False),
        sa.Column("forgone_fen", sa.Integer(), nullable=False),
        sa.Column("subsidy_fen", sa.Integer(), nullable=False),
        sa.Column("withdrawn_on", sa.Date(), nullable=True),
        sa.Column("refund_fen", sa.Integer(), nullable=False),
        sa.Column("billed_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("issued_by", sa.String(length=100), nullable=True),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["school_id"], ["school.id"]),
        sa.ForeignKeyConstraint(["student_id"], ["student.id"]),
        sa.ForeignKeyConstraint(["term_id"], ["term.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("reference"),
        sa.UniqueConstraint("school_id", "student_id", "month"),
    )
    op.create_index(op.f("ix_statement_school_id"), "statement", ["school_id"], unique=False)
    op.create_index(op.f("ix_statement_student_id"), "statement", ["student_id"], unique=False)
    op.create_index(op.f("ix_statement_month"), "statement", ["month"], unique=False)
    op.create_table(
        "payment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("statement_id", sa.Integer(), nullable=True),
        sa.Column("reference", sa.String(length=500), nullable=False),
        sa.Column("amount_fen", sa.Integer(), nullable=False),
        sa.Column("paid_on", sa.Date(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("payer", sa.String(length=200), nullable=False),
        sa.Column("txn_id", sa.String(length=100), nullable=True),
        sa.Column("dedupe_key", sa.String(length=400), nullable=True),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("recorded_by", sa.String(length=100), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("matched_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["school_id"], ["school.id"]),
        sa.ForeignKeyConstraint(["statement_id"], ["statement.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("school_id", "dedupe_key"),
    )
    op.create_index(op.f("ix_payment_school_id"), "payment", ["school_id"], unique=False)
    op.create_index(op.f("ix_payment_statement_id"), "payment", ["statement_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_payment_statement_id"), table_name="payment")
    op.drop_index(op.f("ix_payment_school_id"), table_name="payment")
    op.drop_table("payment")
    op.drop_index(op.f("ix_statement_month"), table_name="statement")
    op.drop_index(op.f("ix_statement_student_id"), table_name="statement")
    op.drop_index(op.f("ix_statement_school_id"), table_name="statement")
    op.drop_table("statement")
