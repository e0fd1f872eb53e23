"""ledger: the school service fund's earmarked ledger, double-entry and hash-chained (issue 15, P7.5)

Revision ID: 0014_ledger
Revises: 0013_staff_pay

Both tables are append-only in the database too, like the audit log (0002): triggers refuse UPDATE and
DELETE (and, on PostgreSQL, TRUNCATE). A correction is a reversing entry; the hash chain
(central/billing/ledger.py ``verify``) still catches someone who drops the triggers.
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_ledger"
down_revision = "0013_staff_pay"
branch_labels = None
depends_on = None

APPEND_ONLY = "the ledger is append-only"
TABLES = ("ledger_entry", "ledger_line")


def upgrade() -> None:
    op.create_table(
        "ledger_entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("memo", sa.String(length=200), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=True),
        sa.Column("reverses_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["school_id"], ["school.id"]),
        sa.ForeignKeyConstraint(["reverses_id"], ["ledger_entry.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("school_id", "seq"),
        sa.UniqueConstraint("reverses_id"),
        sa.UniqueConstraint("hash"),
    )
    op.create_index(op.f("ix_ledger_entry_school_id"), "ledger_entry", ["school_id"], unique=False)
    op.create_table(
        "ledger_line",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("account", sa.String(length=32), nullable=False),
        sa.Column("debit_fen", sa.BigInteger(), nullable=False),
        sa.Column("credit_fen", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("debit_fen >= 0 AND credit_fen >= 0", name="ledger_line_not_negative"),
        sa.CheckConstraint("(debit_fen = 0) <> (credit_fen = 0)", name="ledger_line_one_sided"),
        sa.ForeignKeyConstraint(["entry_id"], ["ledger_entry.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("entry_id", "line_no"),
    )
    op.create_index(op.f("ix_ledger_line_entry_id"), "ledger_line", ["entry_id"], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"""CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION '{APPEND_ONLY}'; END $$"""
        )
        for table in TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION ledger_append_only()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()"
            )
    else:
        for table in TABLES:
            for verb in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END"
                )


def downgrade() -> None:
    op.drop_index(op.f("ix_ledger_line_entry_id"), table_name="ledger_line")
    op.drop_table("ledger_line")
    op.drop_index(op.f("ix_ledger_entry_school_id"), table_name="ledger_entry")
    op.drop_table("ledger_entry")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS ledger_append_only()")
