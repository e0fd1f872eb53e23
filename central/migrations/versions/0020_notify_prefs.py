"""notify_prefs: what a notification is about (``notification.kind``), each guardian's notification choices, the children's emergency contacts, each school's own channels (WeCom, DingTalk), integrators' webhook subscriptions and each delivery's answer (events, channels, quiet hours) (issue 16)

Revision ID: 0020_notify_prefs
Revises: 0022_partitions (written on 0017_notification; re-chained after main's 0022 at the merge)
"""

import sqlalchemy as sa
from alembic import op

revision = "0020_notify_prefs"
down_revision = "0018_pages"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("notification", sa.Column("kind", sa.String(length=24), server_default="", nullable=False))
    op.create_table(
        "notify_preference",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("guardian_id", sa.Integer(), nullable=False),
        sa.Column("events", sa.JSON(), nullable=True),
        sa.Column("channels", sa.JSON(), nullable=True),
        sa.Column("quiet_from", sa.Time(), nullable=True),
        sa.Column("quiet_until", sa.Time(), nullable=True),
        sa.ForeignKeyConstraint(["guardian_id"], ["guardian.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("guardian_id"),
    )
    op.create_table(
        "emergency_contact",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("student_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("address", sa.String(length=500), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("consented_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["student_id"], ["student.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_emergency_contact_student_id", "emergency_contact", ["student_id"])
    op.create_table(
        "school_channel",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("audience", sa.String(length=8), nullable=False),
        sa.Column("address", sa.String(length=500), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["school_id"], ["school.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_school_channel_school_id", "school_channel", ["school_id"])
    op.add_column("notification", sa.Column("answer", sa.String(length=300), server_default="", nullable=False))
    op.create_table(
        "webhook_subscription",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=500), nullable=False),
        sa.Column("kinds", sa.JSON(), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["school_id"], ["school.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_webhook_subscription_school_id", "webhook_subscription", ["school_id"])


def downgrade() -> None:
    op.drop_index("ix_webhook_subscription_school_id", table_name="webhook_subscription")
    op.drop_table("webhook_subscription")
    op.drop_column("notification", "answer")
    op.drop_index("ix_school_channel_school_id", table_name="school_channel")
    op.drop_table("school_channel")
    op.drop_index("ix_emergency_contact_student_id", table_name="emergency_contact")
    op.drop_table("emergency_contact")
    op.drop_table("notify_preference")
    op.drop_column("notification", "kind")
