"""annual filing: what each school filed as its annual report (issue 15, P7.6)

Revision ID: 0015_annual_filing
Revises: 0014_ledger
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_annual_filing"
down_revision = "0014_ledger"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "annual_filing",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.Column("filed_by", sa.String(length=100), nullable=False),
        sa.Column("filed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["school_id"], ["school.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("school_id", "year"),
    )
    op.create_index("ix_annual_filing_school_id", "annual_filing", ["school_id"])


def downgrade() -> None:
    op.drop_index("ix_annual_filing_school_id", table_name="annual_filing")
    op.drop_table("annual_filing")
