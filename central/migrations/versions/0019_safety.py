"""safety: the review steps of a school's safety items (issue 14)

Revision ID: 0019_safety
Revises: 0020_notify_prefs
"""

import sqlalchemy as sa
from alembic import op

revision = "0019_safety"
down_revision = "0020_notify_prefs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "safety_review",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("item", sa.String(length=100), nullable=False),
        sa.Column("step", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("by", sa.String(length=100), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["school_id"], ["school.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_safety_review_item", "safety_review", ["school_id", "item"])


def downgrade() -> None:
    op.drop_index("ix_safety_review_item", table_name="safety_review")
    op.drop_table("safety_review")
