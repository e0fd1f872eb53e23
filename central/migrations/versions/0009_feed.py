"""feed: each school's events in one order, their place in the school's feed (issue 13)

``event.feed_pos`` is an event's place in its school's feed (1, 2, …), given as the ingest stores it;
``school.feed_head`` is the last place given. Events stored before are placed in the order they
were received (then by kiosk and seq), so a kiosk catching up from 0 gets the whole day.

Revision ID: 0009_feed
Revises: 0008_staff_gate_guard
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_feed"
down_revision = "0008_staff_gate_guard"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("school", sa.Column("feed_head", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("feed_pos", sa.Integer(), nullable=True))
    op.execute(
        "UPDATE event SET feed_pos = (SELECT r.pos FROM (SELECT id, ROW_NUMBER() OVER "
        "(PARTITION BY school_id ORDER BY received_at, kiosk_id, seq) AS pos FROM event) r WHERE r.id = event.id)"
    )
    op.execute("UPDATE school SET feed_head = (SELECT COALESCE(MAX(feed_pos), 0) FROM event WHERE event.school_id = school.id)")
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.create_unique_constraint("event_feed_pos", ["school_id", "feed_pos"])


def downgrade() -> None:
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.drop_constraint("event_feed_pos", type_="unique")
        batch_op.drop_column("feed_pos")
    # Not a batch copy: on SQLite that drops and re-creates the table, which the other tables' foreign
    # keys refuse. Both databases drop a plain column in place (SQLite since 3.35).
    op.execute("ALTER TABLE school DROP COLUMN feed_head")
