"""wrong passwords per account and source; signatures recorded from a paper form

Revision ID: 0004_auth
Revises: 0003_merge
Create Date: 2026-12-02

``login_throttle`` replaces ``app_user.failed_logins`` / ``locked_until`` (left in place, unused:
dropping them would rebuild ``app_user`` on SQLite). ``notice_signature.paper`` marks a guardian's or
student's signature that a school admin recorded from a paper form rather than the guardian's account.
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = "0004_auth"
down_revision = "0003_merge"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('login_throttle',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('lockouts', sa.Integer(), nullable=False),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('user_id', 'source')
    )
    with op.batch_alter_table('login_throttle', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_login_throttle_user_id'), ['user_id'], unique=False)
    with op.batch_alter_table('notice_signature', schema=None) as batch_op:
        batch_op.add_column(sa.Column('paper', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('notice_signature', schema=None) as batch_op:
        batch_op.drop_column('paper')
    with op.batch_alter_table('login_throttle', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_login_throttle_user_id'))
    op.drop_table('login_throttle')
