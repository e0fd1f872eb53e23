"""The guardian-link rule (P9.4) as a table: a link acts on a day when it is not barred and the day
lies within its dates, both ends included; picking up also needs ``may_pick_up``. The same table
runs against ``link_acts_on`` (a loaded link) and ``link_holds`` (the SQL clause), so the two
cannot drift apart. Written for the survivors of the mutation run (docs/testing.md)."""

from __future__ import annotations

from datetime import date

import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel, create_engine

from central.schools import links
from central.schools.models import GuardianLink

DAY = date(2026, 12, 1)
BEFORE, AFTER = date(2026, 11, 30), date(2026, 12, 2)

# (case, link fields, pick_up, acts)
CASES = [
    ("plain link", {}, False, True),
    ("plain link, pick-up", {}, True, True),
    # A barred link never has the pick-up right (P9.4, a CHECK in the database).
    ("barred", {"barred": True, "may_pick_up": False}, False, False),
    ("barred, pick-up", {"barred": True, "may_pick_up": False}, True, False),
    ("starts that day", {"valid_from": DAY}, False, True),
    ("starts the next day", {"valid_from": AFTER}, False, False),
    ("started the day before", {"valid_from": BEFORE}, False, True),
    ("ends that day", {"valid_until": DAY}, False, True),
    ("ended the day before", {"valid_until": BEFORE}, False, False),
    ("ends the next day", {"valid_until": AFTER}, False, True),
    ("one-day link on its day", {"valid_from": DAY, "valid_until": DAY}, True, True),
    ("no pick-up right, seeing", {"may_pick_up": False}, False, True),
    ("no pick-up right, picking up", {"may_pick_up": False}, True, False),
]


@pytest.mark.parametrize(("case", "fields", "pick_up", "acts"), CASES, ids=[c[0] for c in CASES])
def test_link_acts_on(case, fields, pick_up, acts):
    link = GuardianLink(guardian_id=1, student_id=1, **fields)
    assert links.link_acts_on(link, DAY, pick_up=pick_up) is acts


def test_no_link_never_acts():
    assert links.link_acts_on(None, DAY) is False


def test_link_holds_selects_the_same_links_as_link_acts_on():
    engine = create_engine("sqlite://")
    SQLModel.metadata.create_all(engine, tables=[GuardianLink.__table__])
    seeing = [(i, fields, acts) for i, (_, fields, pick_up, acts) in enumerate(CASES) if not pick_up]
    table = GuardianLink.__table__
    with engine.begin() as conn:  # plain SQL: the ORM session's audit hook needs the whole schema
        for i, fields, _ in seeing:
            row = {"barred": False, "may_pick_up": True, "relation": "", **fields}
            conn.execute(sa.insert(table).values(id=i + 1, guardian_id=1, student_id=i + 1, **row))
        held = set(conn.execute(sa.select(table.c.id).where(links.link_holds(DAY))).scalars())
    expected = {i + 1 for i, _, acts in seeing if acts}
    assert held == expected, {CASES[i - 1][0] for i in held ^ expected}
    assert isinstance(links.link_holds(DAY), sa.ColumnElement)
