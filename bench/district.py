"""A district's month of billing on PostgreSQL (issue 15): statements for every school of the district
— ``schools`` × ``children`` children in ``groups`` groups each, ``days`` service days, a check-in and a
pickup for each child on most days — made and issued (``statements.bill_month(issue=True)``, the ledger
entries with them), school after school, as ``schoolgate central bill`` does; then one school's day
reconciled (``daily.reconcile_day``).

The data is written with COPY (the schools, terms, plans and kiosks through the ORM, they are few);
the figures time billing and reconciliation only. Targets: the district month ≤ 120 s, one school's
day ≤ 1 s.

    python -m bench.district            # 100 schools × 1,000 children, 22 service days
    python -m bench.district --schools 5   # a part of the district: bill_per_school_seconds × 100 estimates it
    python -m bench.district --tiny     # a size that only shows it still works (CI)
"""

from __future__ import annotations

import statistics
import time as timer
import uuid
from datetime import UTC, date, datetime, time, timedelta

from bench.common import available, database, emit, machine

MONTH = "2030-10"
ZONE = "Asia/Shanghai"  # UTC+8 all year
GROUP_START = time(8, 0)  # 16:00 at the school, in UTC
GROUP_END = time(9, 20)  # two periods
POOR_EVERY = 20  # one child in twenty from a registered poor family (P7.3)
ABSENT_EVERY = 17  # a child is away on one (child, day) in seventeen


def service_days(count: int) -> list[date]:
    """The month's first ``count`` weekdays (no holiday: the rule that takes them away is not timed here)."""
    first = date(2030, 10, 1)
    days = [first + timedelta(days=i) for i in range(31)]
    return [d for d in days if d.weekday() < 5][:count]


def _copy(conn, table: str, columns: tuple[str, ...], rows) -> int:
    n = 0
    with conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            n += 1
    return n


def fill(url: str, *, schools: int, children: int, groups: int, days: int) -> dict:
    """The district: schools with one kiosk, one term and its monthly plan (8,000 fen), ``groups``
    groups meeting every service day, ``children`` enrolled children each (active since August), and
    their check-ins and pickups. Returns what was made."""
    import psycopg
    from sqlmodel import Session

    from central.admin import open_db
    from central.billing.models import FeePlan
    from central.core.config import Settings
    from central.kiosks import partitions
    from central.programme.models import InterestGroup, Term
    from central.schools.models import Kiosk, School, SchoolClass

    settings = Settings(database_url=url)
    engine = open_db(settings)
    with engine.begin() as conn:
        if partitions.partitioned(conn):
            partitions.create_month(conn, "event", datetime(2030, 10, 1, tzinfo=UTC))
    made: dict[str, list] = {"schools": [], "kiosks": [], "classes": [], "groups": []}
    with Session(engine) as session:
        for s in range(schools):
            school = School(code=f"d{s:03d}", name=f"第{s + 1}小学", timezone=ZONE)
            session.add(school)
            session.flush()
            kiosk = Kiosk(school_id=school.id, code="gate-1", secret="ab" * 32)
            klass = SchoolClass(school_id=school.id, grade="三年级", name="1班")
            term = Term(school_id=school.id, name="2030 秋", starts_on=date(2030, 9, 1), ends_on=date(2031, 1, 20), created_by="bench")
            session.add_all([kiosk, klass, term])
            session.flush()
            session.add(FeePlan(school_id=school.id, term_id=term.id, kind="monthly", amount_fen=8_000, set_by="bench"))
            group_ids = []
            for g in range(groups):
                group = InterestGroup(school_id=school.id, name=f"兴趣组{g + 1}", category="sports", capacity=500, place="操场",
                                      grades=["三年级"], weekdays=[1, 2, 3, 4, 5], created_by="bench")
                session.add(group)
                session.flush()
                group_ids.append(group.id)
            made["schools"].append(school.id)
            made["kiosks"].append(kiosk.id)
            made["classes"].append(klass.id)
            made["groups"].append(group_ids)
        session.commit()
    engine.dispose()

    dates = service_days(days)
    now = datetime(2030, 8, 20, tzinfo=UTC)
    events = 0
    with psycopg.connect(url) as conn:
        # Ids are given here (the sequences are moved past them below), so one COPY per table suffices.
        student_rows, enrollment_rows, step_rows, session_rows, event_rows = [], [], [], [], []
        sid = eid = care_id = 0
        base = conn.execute("SELECT coalesce(max(id), 0) FROM student").fetchone()[0]
        for s, school_id in enumerate(made["schools"]):
            for g, group_id in enumerate(made["groups"][s]):
                for day in dates:
                    care_id += 1
                    session_rows.append((care_id, school_id, group_id, day, datetime.combine(day, GROUP_START, UTC),
                                         datetime.combine(day, GROUP_END, UTC), "操场", "bench", now))
            seq = 0
            for c in range(children):
                sid += 1
                eid += 1
                number = f"S{s:03d}{c:05d}"
                student_rows.append((base + sid, school_id, made["classes"][s], number, f"学生{c}", c % POOR_EVERY == 0, False))
                group_id = made["groups"][s][c % len(made["groups"][s])]
                enrollment_rows.append((eid, school_id, base + sid, group_id, "active", "{}", now, now))
                step_rows.append((eid, eid, "approved", "active", "bench", "", now))
                for d, day in enumerate(dates):
                    if (c * 31 + d) % ABSENT_EVERY == 0:
                        continue
                    arrive = datetime.combine(day, GROUP_START, UTC) - timedelta(minutes=5) + timedelta(seconds=c % 240)
                    leave = datetime.combine(day, GROUP_END, UTC) + timedelta(seconds=c % 600)
                    for kind, at in (("checkin", arrive), ("pickup", leave)):
                        seq += 1
                        event_rows.append((str(uuid.UUID(int=(school_id << 64) | seq)), school_id, made["kiosks"][s], seq, kind, at,
                                           at, number, "", "", ""))
        with conn.cursor() as cur:
            cur.execute("SET synchronous_commit = off")
        _copy(conn, "student", ("id", "school_id", "class_id", "student_no", "name", "poverty_registered", "may_leave_alone"), student_rows)
        _copy(conn, "enrollment", ("id", "school_id", "student_id", "group_id", "state", "application", "created_at", "updated_at"),
              enrollment_rows)
        _copy(conn, "enrollment_step", ("id", "enrollment_id", "from_state", "to_state", "actor", "note", "at"), step_rows)
        _copy(conn, "care_session", ("id", "school_id", "group_id", "day", "starts_at", "ends_at", "place", "created_by", "created_at"),
              session_rows)
        events = _copy(conn, "event", ("id", "school_id", "kiosk_id", "seq", "kind", "at", "received_at", "student", "prev", "hash", "sig"),
                       event_rows)
        for table in ("student", "enrollment", "enrollment_step", "care_session"):
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        conn.commit()
        conn.autocommit = True
        conn.execute("ANALYZE")
    return {"school_ids": made["schools"], "children": sid, "sessions": care_id, "events": events}


def bill_district(url: str, school_ids: list[int]) -> tuple[float, int, int]:
    """Every school's month billed and issued, one after another; (seconds, statements, fen charged)."""
    from sqlmodel import Session

    from central.accounts.access import CLI
    from central.billing import rules, statements
    from central.core.db import make_engine
    from central.schools.models import School

    engine = make_engine("postgresql+psycopg://" + url.split("://", 1)[1])
    subsidy = rules.Subsidy(per_child_month_fen=2_000, per_period_fen=0)
    count = charged = 0
    began = timer.perf_counter()
    for school_id in school_ids:
        with Session(engine) as session:
            session.info["actor"] = CLI
            run = statements.bill_month(session, school=session.get(School, school_id), month=statements.Month.parse(MONTH),
                                        cap_fen=10_000, subsidy=subsidy, actor=CLI, issue=True)
            count += run.children
            charged += run.charge_fen
    elapsed = timer.perf_counter() - began
    engine.dispose()
    return elapsed, count, charged


def reconcile_one(url: str, school_id: int, day: date, repeat: int) -> tuple[float, int]:
    """One school's day reconciled ``repeat`` times; (the median seconds, children expected)."""
    from sqlmodel import Session

    from central.core.db import make_engine
    from central.reconciliation import daily
    from central.schools.models import School

    engine = make_engine("postgresql+psycopg://" + url.split("://", 1)[1])
    times, expected = [], 0
    for _ in range(repeat):
        with Session(engine) as session:
            school = session.get(School, school_id)
            began = timer.perf_counter()
            done = daily.reconcile_day(session, school=school, day=day)
            times.append(timer.perf_counter() - began)
            expected = sum(len(s["expected"]) for s in done["sessions"])
    engine.dispose()
    return statistics.median(times), expected


def run(*, schools: int = 100, children: int = 1_000, groups: int = 20, days: int = 22, repeat: int = 5) -> list[dict]:
    if not available("postgres"):
        return []
    with database("postgres") as url:
        began = timer.perf_counter()
        made = fill(url, schools=schools, children=children, groups=groups, days=days)
        filled = timer.perf_counter() - began
        elapsed, count, charged = bill_district(url, made["school_ids"])
        day = service_days(days)[-1]
        reconciled, expected = reconcile_one(url, made["school_ids"][0], day, repeat)
    settings = {"schools": schools, "children": made["children"], "groups_per_school": groups, "service_days": days,
                "sessions": made["sessions"], "events": made["events"], "db": "postgres", **machine()}
    return [
        emit("district", "fill_seconds", round(filled, 1), "s", **settings, note="COPY; not part of the target"),
        emit("district", "bill_month_seconds", round(elapsed, 1), "s", **settings, statements=count, charged_fen=charged,
             target="<= 120"),
        emit("district", "bill_per_school_seconds", round(elapsed / max(1, schools), 3), "s", **settings),
        emit("district", "reconcile_day_seconds", round(reconciled, 3), "s", **settings, expected=expected, repeat=repeat,
             target="<= 1"),
    ]


TINY = dict(schools=2, children=40, groups=4, days=3, repeat=1)  # a size that only shows the benchmark still works (CI)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="run at a size that only shows it works (CI)")
    parser.add_argument("--schools", type=int, default=100, help="schools in the district (a part of it, to measure per school)")
    parser.add_argument("--children", type=int, default=1_000, help="children a school")
    args = parser.parse_args()
    run(**TINY) if args.tiny else run(schools=args.schools, children=args.children)


if __name__ == "__main__":
    main()
