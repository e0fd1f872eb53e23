"""custody: a pickup code remembers the guardian who issued it, so a custody order voids it (P9.4)

Revision ID: 0006_custody
Revises: 0005_ingest
"""

from alembic import op
import sqlalchemy as sa


revision = "0006_custody"
down_revision = "0005_ingest"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pickup_code", schema=None) as batch_op:
        batch_op.add_column(sa.Column("issuer_guardian_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_pickup_code_issuer_guardian_id"), ["issuer_guardian_id"], unique=False)
        batch_op.create_foreign_key("fk_pickup_code_issuer_guardian_id_guardian", "guardian", ["issuer_guardian_id"], ["id"])
    # Codes issued before: their issuer is the guardian account named in ``issued_by`` ("user:<name>").
    op.execute(
        "UPDATE pickup_code SET issuer_guardian_id = ("
        " SELECT app_user.guardian_id FROM app_user"
        " WHERE app_user.role = 'guardian' AND 'user:' || app_user.username = pickup_code.issued_by)"
    )


def downgrade() -> None:
    with op.batch_alter_table("pickup_code", schema=None) as batch_op:
        batch_op.drop_constraint("fk_pickup_code_issuer_guardian_id_guardian", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_pickup_code_issuer_guardian_id"))
        batch_op.drop_column("issuer_guardian_id")
