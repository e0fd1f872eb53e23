"""Every change to the service's records lands in the audit log, in its author's name, without the
service remembering to log it; secrets never do."""

from __future__ import annotations

import json

from sqlmodel import Session, select

from central import audit, services
from central.core.db import make_engine, migrate
from central.models import Guardian, School


def rows(session: Session) -> list[audit.AuditLog]:
    return list(session.exec(select(audit.AuditLog).order_by(audit.AuditLog.seq)))


def test_creates_updates_and_deletes_are_logged_with_the_actor_and_the_chain_holds(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    migrate(engine)
    with Session(engine) as session:
        session.info["actor"] = "admin:principal"
        school = services.ensure_school(session, code="s1")
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
            ("admin:principal", "guardian.create", f"guardian:{guardian.id}"),
            ("admin:principal", "guardian.update", f"guardian:{guardian.id}"),
            ("admin:principal", "guardian.delete", f"guardian:{guardian.id}"),
        ]
        update = rows(session)[1]
        assert json.loads(update.before)["phone"] == "13800138000" and json.loads(update.after)["phone"] == "13900139000"
        assert audit.verify(session).ok
    engine.dispose()


def test_a_kiosk_secret_never_reaches_the_log_and_a_rollback_logs_nothing(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    migrate(engine)
    with Session(engine) as session:
        services.ensure_school(session, code="s1")
        _, secret = services.register_kiosk(session, school="s1", kiosk="gate-1")
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
