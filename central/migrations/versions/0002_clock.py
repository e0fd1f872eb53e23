"""kiosk clocks: boot and mono on events, kiosk_clock

Revision ID: 0002_clock
Revises: 0001
Create Date: 2026-11-29 04:24:32.001825
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0002_clock'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('kiosk_clock',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kiosk_id', sa.Integer(), nullable=False),
    sa.Column('boot', sa.Integer(), nullable=False),
    sa.Column('base_ms', sa.BigInteger(), nullable=False),
    sa.Column('skew_reported_ms', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['kiosk_id'], ['kiosk.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('kiosk_id', 'boot')
    )
    with op.batch_alter_table('kiosk_clock', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_kiosk_clock_kiosk_id'), ['kiosk_id'], unique=False)

    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('boot', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('mono', sa.BigInteger(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.drop_column('mono')
        batch_op.drop_column('boot')

    with op.batch_alter_table('kiosk_clock', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_kiosk_clock_kiosk_id'))

    op.drop_table('kiosk_clock')
