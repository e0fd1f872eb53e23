"""/admin/kiosks without a browser (issue 14): every gate's health as central last heard it, and
registering a gate, whose secret is shown once with the command to run on it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlmodel import select

from central.core import keys
from central.core.audit import AuditLog
from central.schools.models import Kiosk

from .test_pages import csrf_of, log_in, pages  # noqa: F401  (pages: the fixture)


def test_the_admin_sees_each_gates_health(pages):
    with pages.session() as session:
        gate = session.get(Kiosk, pages.ids["gate-1"])
        gate.online, gate.last_seen = True, pages.now["at"] - timedelta(seconds=30)  # 15:49:30 in Shanghai
        gate.status = {"queue": 3, "roster_version": 17, "clock_offset_ms": -420, "reader": "ok", "guard": f"st{pages.ids['staffB']}", "last_seq": 12}
        gate.status_at = gate.last_seen
        gate.acked_seq = 11
        session.add(gate)
        session.add(Kiosk(school_id=pages.ids["s1"], code="gate-2", secret="ab" * 32))
        session.commit()
    log_in(pages.client, "admin1")
    html = pages.client.get("/admin/kiosks").text
    assert dict(re.findall(r'data-kiosk="([^"]+)" data-online="([^"]+)"', html)) == {"gate-1": "yes", "gate-2": "no"}
    one = html[html.index('data-kiosk="gate-1"'):html.index('data-kiosk="gate-2"')]
    assert "2030-10-08 15:49:30" in one and "-420 毫秒" in one and "11 / 12" in one
    assert re.findall(r'data-field="(\w+)">([^<]*)<', one) == [
        ("queue", "3"), ("roster_version", "17"), ("clock_offset_ms", "-420 毫秒"), ("reader", "ok"), ("guard", "staffB")]
    assert "从未联系" in html[html.index('data-kiosk="gate-2"'):]
    # Silent for longer than gate_silent_minutes: no longer online, whatever its last status said.
    pages.now["at"] += timedelta(minutes=3)
    html = pages.client.get("/admin/kiosks").text
    assert 'data-kiosk="gate-1" data-online="no"' in html and "失联" in html


def test_registering_a_gate_shows_its_secret_once_and_the_command(pages, tmp_path):
    pages.settings.signing_key_file = tmp_path / "signing.key"
    log_in(pages.client, "admin1")
    csrf = csrf_of(pages.client.get("/admin/kiosks").text)
    r = pages.client.post("/admin/kiosks", data={"kiosk": "gate-east", "csrf": csrf})
    assert r.status_code == 201
    secret = re.search(r'data-secret="([0-9a-f]{64})"', r.text).group(1)
    with pages.session() as session:
        row = session.exec(select(Kiosk).where(Kiosk.code == "gate-east")).one()
        audit = session.exec(select(AuditLog).where(AuditLog.action == "kiosk.secret")).all()[-1]
    assert (row.school_id, row.secret) == (pages.ids["s1"], secret)
    assert audit.actor == "user:admin1" and secret not in audit.after and '"new"' in audit.after
    key = keys.public_hex(tmp_path / "signing.key")
    command = re.search(r"<pre class=\"command\" data-command>([^<]+)</pre>", r.text).group(1)
    assert command == (f"SCHOOLGATE_KIOSK_CENTRAL_URL=http://testserver schoolgate kiosk run --school s1 --kiosk gate-east --secret {secret} "
                       f"--central-key {key} --mqtt-url mqtt://127.0.0.1:1883 --reader nfc:usb --no-ui")
    html = pages.client.get("/admin/kiosks").text
    assert 'data-kiosk="gate-east"' in html and secret not in html  # shown once
    # A registered gate keeps its secret; a bad id is refused with the reason.
    r = pages.client.post("/admin/kiosks", data={"kiosk": "gate-east", "csrf": csrf})
    assert r.status_code == 409 and "register-kiosk" in r.text
    assert pages.client.post("/admin/kiosks", data={"kiosk": "门口/1", "csrf": csrf}).status_code == 422
    with pages.session() as session:
        assert session.exec(select(Kiosk).where(Kiosk.code == "gate-east")).one().secret == secret
        assert len(session.exec(select(Kiosk)).all()) == 2


def test_the_broker_password_is_not_in_the_command(pages, tmp_path):
    pages.settings.signing_key_file = tmp_path / "signing.key"
    pages.settings.mqtt_url = "mqtt://central:s3cret@broker.school:8883"
    log_in(pages.client, "admin1")
    r = pages.client.post("/admin/kiosks", data={"kiosk": "gate-2", "csrf": csrf_of(pages.client.get("/admin/kiosks").text)})
    assert "--mqtt-url mqtt://broker.school:8883 " in r.text and "s3cret" not in r.text


def test_who_sees_and_registers_gates(pages):
    log_in(pages.client, "admin1")
    assert pages.client.post("/admin/kiosks", data={"kiosk": "gate-x"}, follow_redirects=False).status_code == 403  # no CSRF token
    pages.client.cookies.clear()
    log_in(pages.client, "teacherA")
    assert pages.client.get("/admin/kiosks").status_code == 403
    pages.client.cookies.clear()
    log_in(pages.client, "admin2")
    assert pages.client.get("/admin/kiosks?school=s1").status_code == 404
    csrf = csrf_of(pages.client.get("/admin/kiosks").text)
    assert pages.client.post("/admin/kiosks", data={"kiosk": "gate-x", "school": "s1", "csrf": csrf}).status_code == 404
    pages.client.cookies.clear()
    log_in(pages.client, "district")
    html = pages.client.get("/admin/kiosks?school=s1").text
    assert 'data-kiosk="gate-1"' in html and 'action="/admin/kiosks"' not in html  # the district looks, the school registers
    csrf = csrf_of(html)
    assert pages.client.post("/admin/kiosks", data={"kiosk": "gate-x", "school": "s1", "csrf": csrf}).status_code == 403
    with pages.session() as session:
        assert session.exec(select(Kiosk).where(Kiosk.code == "gate-x")).first() is None
