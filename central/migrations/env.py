"""Alembic environment: runs on the connection central hands in, or on sqlalchemy.url."""

from alembic import context
from sqlalchemy import create_engine
from sqlmodel import SQLModel

import central.core.models  # noqa: F401 - registers the tables on SQLModel.metadata
import central.accounts.access  # noqa: F401 - users, login tokens, child-read log
import central.core.audit  # noqa: F401 - the audit log
import central.pickup.codes  # noqa: F401 - pickup codes, photos
import central.programme.public  # noqa: F401 - the public page's profile

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
