"""child alert: an alert about a child in a session, stored once however many gates raise it (issue 13)

Revision ID: 0011_child_alert
Revises: 0010_gate_health
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_child_alert"
down_revision = "0010_gate_health"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "child_alert",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("student", sa.String(length=64), nullable=False),
        sa.Column("session", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kiosk", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("raised", sa.Integer(), server_default="1", nullable=False),
        sa.ForeignKeyConstraint(["school_id"], ["school.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("school_id", "kind", "student", "session", name="child_alert_once"),
    )
    op.create_index(op.f("ix_child_alert_school_id"), "child_alert", ["school_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_child_alert_school_id"), table_name="child_alert")
    op.drop_table("child_alert")
