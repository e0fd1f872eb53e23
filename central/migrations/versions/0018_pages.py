"""pages: a child's absence on a day excused (请假) by the teacher or the school, with a note (issue 14)

Revision ID: 0018_pages
Revises: 0022_partitions
"""

import sqlalchemy as sa
from alembic import op

revision = "0018_pages"
down_revision = "0022_partitions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "absence_excuse",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("student_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.Column("by_user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["school_id"], ["school.id"]),
        sa.ForeignKeyConstraint(["student_id"], ["student.id"]),
        sa.ForeignKeyConstraint(["by_user_id"], ["app_user.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("student_id", "day"),
    )
    op.create_index("ix_absence_excuse_school_id", "absence_excuse", ["school_id"])
    op.create_index("ix_absence_excuse_student_id", "absence_excuse", ["student_id"])
    op.create_index("ix_absence_excuse_day", "absence_excuse", ["day"])


def downgrade() -> None:
    op.drop_index("ix_absence_excuse_day", table_name="absence_excuse")
    op.drop_index("ix_absence_excuse_student_id", table_name="absence_excuse")
    op.drop_index("ix_absence_excuse_school_id", table_name="absence_excuse")
    op.drop_table("absence_excuse")
