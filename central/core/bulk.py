"""Writing many rows at once past the ORM, on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlmodel import Session


def copy_rows(session: Session, table: str, columns: Sequence[str], rows: Iterable[Sequence]) -> None:
    """PostgreSQL only: write ``rows`` into ``table`` with COPY, on the session's connection and in its
    transaction, past the ORM — for the batches a district's billing writes (thousands of statements,
    their ledger entries and audit rows a school: bench/district.py), where ORM objects and even the
    driver's ``executemany`` cost seconds. Columns not named take their defaults, as in an INSERT."""
    raw = session.connection().connection.driver_connection
    with raw.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
