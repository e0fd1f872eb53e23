"""notification: the outbox of notifications to guardians, and each guardian's consent per channel (issue 16)

Revision ID: 0017_notification
Revises: 0016_statement
"""

import sqlalchemy as sa
from alembic import op

revision = "0017_notification"
down_revision = "0016_statement"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "guardian_channel",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("guardian_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("address", sa.String(length=500), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("consented_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["guardian_id"], ["guardian.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("guardian_id", "channel"),
    )
    op.create_index("ix_guardian_channel_guardian_id", "guardian_channel", ["guardian_id"])
    op.create_table(
        "notification",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("event_ref", sa.String(length=80), nullable=False),
        sa.Column("recipient", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("address", sa.String(length=500), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("next_try_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["school_id"], ["school.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_ref", "recipient", "channel", name="notification_once"),
    )
    op.create_index("ix_notification_school_id", "notification", ["school_id"])
    op.create_index("ix_notification_due", "notification", ["state", "next_try_at"])


def downgrade() -> None:
    op.drop_index("ix_notification_due", table_name="notification")
    op.drop_index("ix_notification_school_id", table_name="notification")
    op.drop_table("notification")
    op.drop_index("ix_guardian_channel_guardian_id", table_name="guardian_channel")
    op.drop_table("guardian_channel")
