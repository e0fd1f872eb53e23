"""school_notify: a school's own SMS gateway and mail server for its notifications (issue 16, settings per school)

Revision ID: 0023_school_notify
Revises: 0021_money
"""

import sqlalchemy as sa
from alembic import op

revision = "0023_school_notify"
down_revision = "0021_money"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "school_notify_settings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("sms_url", sa.String(length=500), nullable=False),
        sa.Column("smtp_host", sa.String(length=200), nullable=False),
        sa.Column("smtp_port", sa.Integer(), nullable=False),
        sa.Column("smtp_starttls", sa.Boolean(), nullable=False),
        sa.Column("smtp_user", sa.String(length=200), nullable=False),
        sa.Column("smtp_password", sa.String(length=200), nullable=False),
        sa.Column("email_from", sa.String(length=200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["school_id"], ["school.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("school_id"),
    )


def downgrade() -> None:
    op.drop_table("school_notify_settings")
