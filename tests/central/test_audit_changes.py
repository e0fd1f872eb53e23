"""Every change to the service's records lands in the audit log, in its author's name, without the
service remembering to log it; secrets never do."""

from __future__ import annotations

import json

from sqlmodel import Session, select

from central.core import audit
from central.core.db import make_engine, migrate
from central.kiosks import services
from central.schools.models import Guardian, School
from central.schools import registry


def rows(session: Session) -> list[audit.AuditLog]:
    return list(session.exec(select(audit.AuditLog).order_by(audit.AuditLog.seq)))


def test_creates_updates_and_deletes_are_logged_with_the_actor_and_the_chain_holds(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    migrate(engine)
    with Session(engine) as session:
        session.info["actor"] = "admin:principal"
        school = registry.ensure_school(session, code="s1")
        guardian = Guardian(school_id=school.id, name="王父", phone="13800138000")
        session.add(guardian)
        session.commit()
        guardian.phone = "13900139000"
        session.add(guardian)
        session.commit()
        session.delete(guardian)
        session.commit()
        logged = [(r.actor, r.action, r.entity) for r in rows(session)]
        assert logged == [
            ("admin:principal", "school.create", f"school:{school.id}"),
            ("admin:principal", "guardian.create", f"guardian:{guardian.id}"),
            ("admin:principal", "guardian.update", f"guardian:{guardian.id}"),
            ("admin:principal", "guardian.delete", f"guardian:{guardian.id}"),
        ]
        update = rows(session)[2]
        assert json.loads(update.before)["phone"] == "13800138000" and json.loads(update.after)["phone"] == "13900139000"
        assert audit.verify(session).ok
    engine.dispose()


def test_a_kiosk_secret_never_reaches_the_log_and_a_rollback_logs_nothing(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    migrate(engine)
    with Session(engine) as session:
        registry.ensure_school(session, code="s1")
        _, secret = services.register_kiosk(session, school=registry.get_school(session, "s1"), kiosk="gate-1")
        (row,) = [r for r in rows(session) if r.action == "kiosk.create"]
        assert secret not in row.after and "secret" not in json.loads(row.after)
        assert row.actor == "system"
        before = len(rows(session))
        session.add(School(code="s2", name="s2"))
        session.add(Guardian(school_id=1, name="x"))
        session.flush()
        session.rollback()
        assert len(rows(session)) == before
    engine.dispose()


def _school_with_class(tmp_path):
    from central.schools.models import SchoolClass

    engine = make_engine(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    migrate(engine)
    with Session(engine) as session:
        school = registry.ensure_school(session, code="s1")
        session.add(SchoolClass(school_id=school.id, grade="三年级", name="1班"))
        session.commit()
    return engine


def test_a_savepoint_rolled_back_takes_back_only_its_own_changes(tmp_path):
    import sqlalchemy as sa

    from central.schools.models import Student

    engine = _school_with_class(tmp_path)
    with Session(engine) as session:
        session.add(Student(school_id=1, class_id=1, student_no="1", name="甲"))
        session.commit()
    with Session(engine) as session:
        session.add(Guardian(school_id=1, name="乙家长"))
        session.flush()
        try:
            with session.begin_nested():  # "insert unless it exists": the duplicate fails
                session.add(Student(school_id=1, class_id=1, student_no="1", name="重复"))
        except sa.exc.IntegrityError:
            pass
        session.commit()
        actions = [r.action for r in rows(session)]
    assert actions[-2:] == ["student.create", "guardian.create"]
    engine.dispose()


def test_changes_flushed_then_abandoned_with_close_are_never_logged(tmp_path):
    from central.schools.models import Student

    engine = _school_with_class(tmp_path)
    session = Session(engine)
    session.add(Student(school_id=1, class_id=1, student_no="9", name="从未提交"))
    session.flush()
    session.close()
    session.add(Guardian(school_id=1, name="丙家长"))
    session.commit()
    assert [r.action for r in rows(session)][-1] == "guardian.create"
    assert "student.create" not in [r.action for r in rows(session)]
    session.close()
    engine.dispose()


def test_an_update_of_a_loaded_row_is_logged_from_memory_without_reading_it_again(tmp_path):
    import sqlalchemy as sa

    engine = _school_with_class(tmp_path)
    with Session(engine) as session:
        guardian = Guardian(school_id=1, name="丁家长", phone="13800138000")
        session.add(guardian)
        session.commit()
    with Session(engine) as session:
        guardian = session.get(Guardian, 1)  # loaded: its old values are in memory
        selects: list[str] = []
        sa.event.listen(engine, "before_cursor_execute", lambda *a: selects.append(a[2]) if "FROM guardian" in a[2] else None)
        guardian.phone = "13900139000"
        session.add(guardian)
        session.commit()
        update = [r for r in rows(session) if r.action == "guardian.update"][-1]
    assert json.loads(update.before)["phone"] == "13800138000"
    assert json.loads(update.after)["phone"] == "13900139000"
    assert selects == []
    engine.dispose()


def test_a_school_created_and_a_kiosk_secret_set_and_changed_are_audited_without_the_secret(tmp_path):
    from central import admin
    from central.core.config import Settings

    settings = Settings(database_url=f"sqlite:///{tmp_path / 'c.sqlite3'}")
    admin.create_school(settings, code="s1", name="示范小学")
    first = admin.register_kiosk(settings, school="s1", kiosk="gate-1")
    admin.register_kiosk(settings, school="s1", kiosk="gate-1", secret="5e" * 32)  # a stolen kiosk's secret replaced
    admin.register_kiosk(settings, school="s1", kiosk="gate-1", secret="5E" * 32)  # the same key, written again
    engine = make_engine(settings.sqlalchemy_url)
    with Session(engine) as session:
        logged = [r for r in rows(session) if r.action in ("school.create", "kiosk.secret")]
        assert [(r.actor, r.action, r.entity, r.school_id) for r in logged] == [
            ("cli:create-school", "school.create", "school:1", 1),
            ("cli:register-kiosk", "kiosk.secret", "kiosk:1", 1),
            ("cli:register-kiosk", "kiosk.secret", "kiosk:1", 1),
            ("cli:register-kiosk", "kiosk.secret", "kiosk:1", 1),
        ]
        assert json.loads(logged[0].after) == {"code": "s1", "name": "示范小学", "timezone": "Asia/Shanghai"}
        assert [json.loads(r.after) for r in logged[1:]] == [
            {"school": "s1", "kiosk": "gate-1", "secret": "new"},
            {"school": "s1", "kiosk": "gate-1", "secret": "replaced"},
            {"school": "s1", "kiosk": "gate-1", "secret": "unchanged"},
        ]
        everything = "".join(r.before + r.after for r in rows(session)).lower()
        assert first not in everything and "5e" * 32 not in everything
        assert audit.verify(session).ok
    engine.dispose()


def test_a_row_made_and_changed_in_one_transaction_is_one_create_row_showing_it_as_committed(tmp_path):
    # A statement's reference is set after the insert gave it its id, in the same transaction: the
    # log has one row for it, a create holding the reference, not a create and an update.
    engine = make_engine(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    migrate(engine)
    with Session(engine) as session:
        school = registry.ensure_school(session, code="s1")
        guardian = Guardian(school_id=school.id, name="王父", phone="13800138000")
        session.add(guardian)
        session.flush()
        guardian.phone = f"1390013{guardian.id:04d}"
        session.add(guardian)
        session.flush()
        session.commit()
        logged = [(r.action, r.entity) for r in rows(session) if r.entity.startswith("guardian:")]
        assert logged == [("guardian.create", f"guardian:{guardian.id}")]
        (row,) = [r for r in rows(session) if r.entity.startswith("guardian:")]
        assert json.loads(row.before) is None and json.loads(row.after)["phone"] == f"1390013{guardian.id:04d}"
        guardian.phone = "13700137000"  # a later transaction's change is its own row again
        session.add(guardian)
        session.commit()
        assert [r.action for r in rows(session) if r.entity.startswith("guardian:")] == ["guardian.create", "guardian.update"]
        assert audit.verify(session).ok
    engine.dispose()
