"""merge the three branches written side by side: accounts, service model, kiosk clocks

Revision ID: 0003_merge
Revises: 0002_accounts, 0002_clock, 0002_service
"""

revision = "0003_merge"
down_revision = ("0002_accounts", "0002_clock", "0002_service")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
