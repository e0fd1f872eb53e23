"""gate health: what central last heard from each gate (issue 13)

``kiosk.last_seen`` is when central last received anything from the gate (its events or status);
``online`` and ``status`` are the gate's last status as sent (queue, seqs, roster, clock offset,
reader, guard), kept when the gate goes offline; ``status_at`` when that status arrived;
``silence_reported_at`` when a silence during a session was last reported (once per silence).

Revision ID: 0010_gate_health
Revises: 0009_feed
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_gate_health"
down_revision = "0009_feed"
branch_labels = None
depends_on = None

COLUMNS = ("last_seen", "online", "status", "status_at", "silence_reported_at")


def upgrade() -> None:
    # Plain ALTERs, not a batch copy: the kiosk table is referenced by others (SQLite would refuse the drop).
    op.add_column("kiosk", sa.Column("last_seen", sa.DateTime(timezone=True), nullable=True))
    op.add_column("kiosk", sa.Column("online", sa.Boolean(), nullable=True))
    op.add_column("kiosk", sa.Column("status", sa.JSON(), nullable=True))
    op.add_column("kiosk", sa.Column("status_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("kiosk", sa.Column("silence_reported_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    for name in reversed(COLUMNS):
        op.execute(f"ALTER TABLE kiosk DROP COLUMN {name}")
