"""kiosk status: each gate's last known health, from its signed status messages (issue 13)

Revision ID: 0010_kiosk_status
Revises: 0009_feed
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = "0010_kiosk_status"
down_revision = "0009_feed"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kiosk_status",
        sa.Column("kiosk_id", sa.Integer(), nullable=False),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("boot", sa.Integer(), nullable=True),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("queue", sa.Integer(), nullable=True),
        sa.Column("last_seq", sa.Integer(), nullable=True),
        sa.Column("acked", sa.Integer(), nullable=True),
        sa.Column("roster_version", sa.Integer(), nullable=True),
        sa.Column("clock_offset_ms", sa.BigInteger(), nullable=True),
        sa.Column("reader", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("guard", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("refused", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["kiosk_id"], ["kiosk.id"]),
        sa.PrimaryKeyConstraint("kiosk_id"),
    )


def downgrade() -> None:
    op.drop_table("kiosk_status")
