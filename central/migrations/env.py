"""Alembic environment: runs on the connection central hands in, or on sqlalchemy.url."""

from alembic import context
from sqlalchemy import create_engine
from sqlmodel import SQLModel

# Every table, registered on SQLModel.metadata: each domain keeps its own in its models.py.
import central.accounts.models  # noqa: F401
import central.billing.models  # noqa: F401
import central.core.audit  # noqa: F401 - the audit log
import central.kiosks.models  # noqa: F401
import central.notifications.models  # noqa: F401
import central.pickup.models  # noqa: F401
import central.programme.models  # noqa: F401
import central.reconciliation.models  # noqa: F401
import central.safety.models  # noqa: F401
import central.schools.models  # noqa: F401

config = context.config
target_metadata = SQLModel.metadata


def run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    with create_engine(config.get_main_option("sqlalchemy.url")).connect() as conn:
        run(conn)
        conn.commit()
