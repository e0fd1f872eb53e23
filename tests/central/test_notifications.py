"""Guardians hear about their child (issue 16, first step): a pickup or a child walking out alone, stored at
ingest, becomes one outbox row per guardian with the right to know and channel they consented to, and
reaches real local servers — an HTTP receiver for the webhook and the SMS gateway, aiosmtpd for email."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import threading
from datetime import UTC, date, datetime, time, timedelta
from email import message_from_bytes
from email.policy import default as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import paho.mqtt.publish as paho_publish
import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from sqlmodel import Session, select

from central.core.db import make_engine, migrate
from central.core import clock
from central.core.events import ChildAlertRaised, ChildLeft, DomainEvents
from central.kiosks import services
from central.kiosks.ingest import Ingest
from central.notifications import channels, ladder, outbox
from central.kiosks.models import SafetyIncident
from central.notifications.models import (
    EmergencyContact,
    GuardianChannel,
    Notification,
    NotifyPreference,
    SchoolChannel,
    SchoolNotifySettings,
)
from central.pickup.models import PickupCode
from central.programme import excuses
from central.programme.models import CareSession, DutyAssignment, InterestGroup, Staff
from central.schools import registry
from central.schools.models import Guardian, GuardianLink, School, SchoolClass, Student
from gateway import protocol
from sgtest import Broker, wait_for

TOPICS = protocol.Topics("sg/v1")
AT = datetime(2030, 9, 2, 8, 0, tzinfo=UTC)  # 16:00 in Shanghai; the gate's events are AT + seq seconds
SECRET = "71" * 32
HOOK_SECRET = "a-webhook-subscription-secret"
NOW = datetime(2030, 9, 2, 8, 0, 5, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """A real HTTP server in a thread that keeps every request (path, headers, body); started and stopped at will."""

    def __init__(self, port: int | None = None, answer=lambda path: b"") -> None:
        self.port = port or free_port()
        self.got: list[tuple[str, dict[str, str], bytes]] = []
        self.server: ThreadingHTTPServer | None = None
        self.answer = answer  # the body answered to a path (the robots answer JSON)

    def start(self) -> Receiver:
        got, answer = self.got, self.answer

        class Handler(BaseHTTPRequestHandler):
            def _keep(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                got.append((self.path, dict(self.headers), self.rfile.read(length)))
                body = answer(self.path)
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _keep

            def log_message(self, *args) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def hooks(self, path: str) -> list[tuple[dict[str, str], dict]]:
        return [(headers, json.loads(body)) for p, headers, body in self.got if p == path]

    def sms(self) -> list[dict[str, str]]:
        return [{k: v[0] for k, v in parse_qs(urlsplit(p).query).items()} for p, _, _ in self.got if p.startswith("/sms")]


class Mailbox:
    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.mails.append((envelope.rcpt_tos, message_from_bytes(envelope.content, policy=email_policy)))
        return "250 OK"

    def __init__(self) -> None:
        self.mails: list = []


@pytest.fixture
def receiver():
    found = Receiver().start()
    yield found
    found.stop()


@pytest.fixture
def smtp():
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield box, controller.port
    controller.stop()


@pytest.fixture
def school(tmp_path):
    """School s1 (Asia/Shanghai), gate k1; 王小明 (S1) with mum (webhook, zh_CN), dad (SMS and email, en), a
    barred parent who consented to everything, a parent who consented to nothing; 欧阳娜娜 (S2) and her
    guardian, who consented to the webhook."""
    engine = make_engine(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    migrate(engine)
    with Session(engine) as session:
        s1 = registry.ensure_school(session, code="s1")
        services.register_kiosk(session, school=s1, kiosk="k1", secret=SECRET)
        klass = SchoolClass(school_id=s1.id, grade="3", name="3-2")
        session.add(klass)
        session.flush()
        ming = Student(school_id=s1.id, class_id=klass.id, student_no="S1", name="王小明")
        nana = Student(school_id=s1.id, class_id=klass.id, student_no="S2", name="欧阳娜娜")
        people = {key: Guardian(school_id=s1.id, name=key, phone="13800000000") for key in ("mum", "dad", "barred", "silent", "other")}
        session.add_all([ming, nana, *people.values()])
        session.flush()
        session.add_all([
            GuardianLink(guardian_id=people["mum"].id, student_id=ming.id, relation="妈妈"),
            GuardianLink(guardian_id=people["dad"].id, student_id=ming.id, relation="Dad"),
            GuardianLink(guardian_id=people["barred"].id, student_id=ming.id, relation="父亲", barred=True, may_pick_up=False),
            GuardianLink(guardian_id=people["silent"].id, student_id=ming.id, relation="奶奶"),
            GuardianLink(guardian_id=people["other"].id, student_id=nana.id, relation="妈妈"),
        ])
        ids = {key: g.id for key, g in people.items()}
        session.commit()
    yield engine, ids
    engine.dispose()


def consent(engine, guardian: int, channel: str, address: str, language: str = "zh_CN", secret: str = "") -> None:
    with Session(engine) as session:
        session.add(GuardianChannel(guardian_id=guardian, channel=channel, address=address, language=language, secret=secret))
        session.commit()


class Gate:
    def __init__(self) -> None:
        self.seq, self.prev = 0, ""

    def event(self, **fields) -> tuple[str, bytes, bool]:
        self.seq += 1
        event = protocol.new_event(school="s1", kiosk="k1", seq=self.seq, prev=self.prev, at=AT + timedelta(seconds=self.seq),
                                   kind=fields.pop("kind"), secret=bytes.fromhex(SECRET), **fields)
        self.prev = protocol.event_hash(event)
        return (TOPICS.events("s1", "k1"), protocol.canonical_json(event), False)


def ingest_for(engine) -> Ingest:
    """An ingest whose stored gate events reach the outbox, as central's app wires it (central/main.py)."""
    events = DomainEvents()
    outbox.subscribe(events, engine, now=lambda: NOW)
    return Ingest(engine, topics=TOPICS, publish=lambda *a, **k: None, events=events, clock=lambda: NOW)


def outbox_rows(engine) -> list[tuple[str, str, str, str]]:
    with Session(engine) as session:
        return sorted((n.recipient, n.channel, n.state, n.body) for n in session.exec(select(Notification)))


@pytest.mark.parametrize(("name", "given"), [
    ("王小明", "小明"), ("李娜", "娜"), ("欧阳娜娜", "娜娜"), ("Anna Li", "Anna"), ("Tom", "Tom"),
    ("  张三 ", "三"), ("阿依古丽·买买提", "阿依古丽·买买提"),
])
def test_the_given_name_drops_the_family_name(name, given):
    assert outbox.given_name(name) == given


def test_a_pickup_reaches_each_consenting_guardian_in_their_language_and_nobody_else(school, receiver, smtp):
    engine, g = school
    box, smtp_port = smtp
    consent(engine, g["mum"], "webhook", receiver.url("/hook/mum"), "zh_CN", HOOK_SECRET)
    consent(engine, g["dad"], "sms", "+8613900000001", "en")
    consent(engine, g["dad"], "email", "dad@example.cn", "en")
    for channel, address in (("webhook", receiver.url("/hook/barred")), ("sms", "+8613900000666"), ("email", "barred@example.cn")):
        consent(engine, g["barred"], channel, address, "zh_CN", HOOK_SECRET)
    consent(engine, g["other"], "webhook", receiver.url("/hook/other"), "zh_CN", HOOK_SECRET)

    gate = Gate()
    ingest_for(engine).process([gate.event(kind="pickup", student="S1", guardian=f"g{g['dad']}")])

    sent = outbox.dispatch_due(Session(engine), now=NOW, channels={
        "webhook": channels.Webhook(httpx.Client(timeout=2), now=lambda: NOW),
        "sms": channels.SmsGateway(receiver.url("/sms?to={to}&text={text}&ref={id}"), httpx.Client(timeout=2)),
        "email": channels.Email("127.0.0.1", smtp_port, sender="gate@school.example"),
    })

    assert sent == 3
    zh = "小明已于 2030-09-02 16:00 在 k1 由爸爸接走。"  # "Dad" as recorded, read in Chinese
    en = "小明 was picked up by father at k1 at 2030-09-02 16:00."  # "Dad" as recorded, read in English
    [(headers, body)] = receiver.hooks("/hook/mum")
    assert body["text"] == zh and body["language"] == "zh_CN"
    # The signature: HMAC-SHA256 over timestamp "." body with the subscription's secret, recomputed here.
    raw = [b for p, _, b in receiver.got if p == "/hook/mum"][0]
    timestamp = headers["X-Schoolgate-Timestamp"]
    assert timestamp == str(int(NOW.timestamp())) == "1914566405"
    assert headers["X-Schoolgate-Signature"] == hmac.new(HOOK_SECRET.encode(), b"1914566405." + raw, hashlib.sha256).hexdigest()
    assert headers["X-Schoolgate-Id"] == str(body["id"])
    assert receiver.sms() == [{"to": "+8613900000001", "text": en, "ref": receiver.sms()[0]["ref"]}]
    [(to, mail)] = box.mails
    assert to == ["dad@example.cn"]
    assert mail.get_content().strip() == en
    assert mail["Subject"] == "Your child left school"
    # Nothing for the barred parent, the other child's guardian, nor the one who consented to nothing.
    assert receiver.hooks("/hook/barred") == [] and receiver.hooks("/hook/other") == []
    assert {r[0] for r in outbox_rows(engine)} == {f"g{g['mum']}", f"g{g['dad']}"}
    # No class, no phone number in what was sent.
    assert all("3-2" not in t and "138" not in t for t in (zh, en))


def test_a_child_walking_out_alone_is_told_and_an_event_handled_twice_is_stored_once(school, receiver):
    engine, g = school
    consent(engine, g["mum"], "webhook", receiver.url("/hook/mum"), "zh_CN", HOOK_SECRET)
    consent(engine, g["dad"], "webhook", receiver.url("/hook/dad"), "en", HOOK_SECRET)
    ingest = ingest_for(engine)
    gate = Gate()
    ingest.process([gate.event(kind="self_dismiss", student="S1")])
    # The same stored event told to the outbox again (a handler run twice): no second row.
    with Session(engine) as session:
        event_id = session.exec(select(Notification.event_ref)).first().removeprefix("event:")
        s1 = session.exec(select(School)).first()
        again = ChildLeft(school_id=s1.id, event_id=event_id, kind="self_dismiss", student="S1", guardian=None, kiosk="k1",
                          at=AT + timedelta(seconds=1))
        assert outbox.enqueue_child_left(session, school=s1, event=again, now=NOW) == 0

    outbox.dispatch_due(Session(engine), now=NOW, channels={"webhook": channels.Webhook(httpx.Client(timeout=2), now=lambda: NOW)})
    outbox.dispatch_due(Session(engine), now=NOW + timedelta(days=1), channels={"webhook": channels.Webhook(httpx.Client(timeout=2))})

    assert [b["text"] for _, b in receiver.hooks("/hook/mum")] == ["小明已于 2030-09-02 16:00 从 k1 独自离校。"]
    assert [b["text"] for _, b in receiver.hooks("/hook/dad")] == ["小明 walked out alone at k1 at 2030-09-02 16:00."]


def test_a_receiver_down_then_up_gets_every_message_once(school):
    engine, g = school
    down = Receiver()  # nothing listens on its port yet
    consent(engine, g["mum"], "webhook", down.url("/hook/mum"), "zh_CN", HOOK_SECRET)
    consent(engine, g["dad"], "webhook", down.url("/hook/dad"), "en", HOOK_SECRET)
    gate = Gate()
    ingest_for(engine).process([gate.event(kind="pickup", student="S1", guardian=f"g{g['mum']}"),
                                gate.event(kind="self_dismiss", student="S1")])
    hook = {"webhook": channels.Webhook(httpx.Client(timeout=2))}

    def dispatch(at: datetime) -> int:
        with Session(engine) as session:
            return outbox.dispatch_due(session, now=at, channels=hook)

    assert dispatch(NOW) == 0  # refused: 4 failed tries, each waits 30 s
    assert dispatch(NOW + timedelta(seconds=29)) == 0
    with Session(engine) as session:
        rows = session.exec(select(Notification)).all()
        assert [(n.state, n.tries) for n in rows] == [("pending", 1)] * 4
        assert all(n.last_error.startswith("ConnectError") for n in rows)
        assert all(n.next_try_at == NOW + timedelta(seconds=30) for n in rows)
    assert dispatch(NOW + timedelta(seconds=30)) == 0  # second try, still down: next in 60 s
    down.start()
    try:
        assert dispatch(NOW + timedelta(seconds=89)) == 0  # not due yet
        assert dispatch(NOW + timedelta(seconds=90)) == 4
        assert dispatch(NOW + timedelta(days=1)) == 0
        texts = sorted(b["text"] for p in ("/hook/mum", "/hook/dad") for _, b in down.hooks(p))
        assert texts == sorted([
            "小明已于 2030-09-02 16:00 在 k1 由妈妈接走。", "小明已于 2030-09-02 16:00 从 k1 独自离校。",
            "小明 was picked up by mother at k1 at 2030-09-02 16:00.", "小明 walked out alone at k1 at 2030-09-02 16:00.",
        ])
    finally:
        down.stop()


def test_after_the_last_try_a_notification_is_parked_and_the_admin_lists_it(school):
    engine, g = school
    consent(engine, g["mum"], "webhook", Receiver().url("/hook/mum"), "zh_CN", HOOK_SECRET)  # never up
    ingest_for(engine).process([Gate().event(kind="self_dismiss", student="S1")])
    hook = {"webhook": channels.Webhook(httpx.Client(timeout=2))}
    at = NOW
    # Tries at 0, +30 s, +1, +2, +4, +8 min: the sixth failure parks it.
    for wait in (0, 30, 60, 120, 240, 480):
        at += timedelta(seconds=wait)
        with Session(engine) as session:
            assert outbox.dispatch_due(session, now=at - timedelta(seconds=1), channels=hook) == 0
            assert session.exec(select(Notification.tries)).one() == (0 if wait == 0 else [30, 60, 120, 240, 480].index(wait) + 1)
            outbox.dispatch_due(session, now=at, channels=hook)
    with Session(engine) as session:
        [n] = session.exec(select(Notification)).all()
        assert (n.state, n.tries) == ("parked", 6)
        s1 = session.exec(select(School)).first()
        assert [p.id for p in outbox.listed(session, school=s1, state="parked")] == [n.id]
        assert outbox.listed(session, school=s1, state="pending") == []
        assert outbox.dispatch_due(session, now=at + timedelta(days=1), channels=hook) == 0


class CrashAfterSending:
    """Hands the notification to the webhook, then central dies before it records the send."""

    def __init__(self) -> None:
        self.hook = channels.Webhook(httpx.Client(timeout=2))

    def send(self, notification, *, secret: str) -> None:
        self.hook.send(notification, secret=secret)
        raise SystemExit("central killed")


def test_a_notification_in_flight_when_central_dies_is_sent_again_with_the_same_id(school, receiver):
    engine, g = school
    consent(engine, g["mum"], "webhook", receiver.url("/hook/mum"), "zh_CN", HOOK_SECRET)
    ingest_for(engine).process([Gate().event(kind="self_dismiss", student="S1")])
    with pytest.raises(SystemExit), Session(engine) as session:
        outbox.dispatch_due(session, now=NOW, channels={"webhook": CrashAfterSending()})
    # A new central: the row is still pending, counted once, due after the first backoff.
    with Session(engine) as session:
        hook = {"webhook": channels.Webhook(httpx.Client(timeout=2))}
        assert outbox.dispatch_due(session, now=NOW + timedelta(seconds=29), channels=hook) == 0
        assert outbox.dispatch_due(session, now=NOW + timedelta(seconds=30), channels=hook) == 1
        [n] = session.exec(select(Notification)).all()
        assert (n.state, n.tries) == ("sent", 2)
    ids = [headers["X-Schoolgate-Id"] for headers, _ in receiver.hooks("/hook/mum")]
    assert ids == [str(n.id), str(n.id)]  # at least once; the receiver sees the same idempotency key


def test_consent_withdrawn_before_the_send_sends_nothing(school, receiver):
    engine, g = school
    consent(engine, g["mum"], "webhook", receiver.url("/hook/mum"), "zh_CN", HOOK_SECRET)
    ingest_for(engine).process([Gate().event(kind="self_dismiss", student="S1")])
    with Session(engine) as session:
        session.delete(session.exec(select(GuardianChannel)).one())
        session.commit()
        assert outbox.dispatch_due(session, now=NOW, channels={"webhook": channels.Webhook(httpx.Client(timeout=2))}) == 0
        assert session.exec(select(Notification.state)).one() == "parked"
    assert receiver.got == []


def test_central_wires_the_outbox_to_its_domain_events_and_the_admin_reads_it(world):
    """central/main.py: a ``ChildLeft`` published on the app's events stores the guardians' notifications,
    and the school admin lists them over HTTP (what parked ones look like is shown above)."""
    for guardian in ("gA", "gBarred"):
        consent(world.engine, world.ids[guardian], "webhook", f"http://127.0.0.1:9/{guardian}", "en", HOOK_SECRET)
    with Session(world.engine) as session:
        s1 = session.exec(select(School).where(School.code == "s1")).one()
        school_id = s1.id
    world.client.app.state.events.publish(ChildLeft(school_id=school_id, event_id="e-1", kind="pickup", student="A1",
                                                     guardian=f"g{world.ids['gA']}", kiosk="gate-1", at=AT))
    listed = world.client.get("/api/v1/schools/s1/notifications", headers=world.as_("admin1"))
    assert listed.status_code == 200
    assert [(n["event_ref"], n["recipient"], n["channel"], n["state"], n["tries"]) for n in listed.json()] == [
        ("event:e-1", f"g{world.ids['gA']}", "webhook", "pending", 0),
    ]
    assert world.client.get("/api/v1/schools/s1/notifications?state=parked", headers=world.as_("admin1")).json() == []
    with Session(world.engine) as session:
        assert session.exec(select(Notification.body)).one() == "学生A1 was picked up by father at gate-1 at 2030-09-02 16:00."


@pytest.mark.parametrize("world", ["sqlite", "postgres"], indirect=True)  # the claim's UPDATE … RETURNING on both
def test_the_admin_sends_a_parked_notification_again_under_its_id_and_a_withdrawn_consent_still_holds(world, receiver):
    consent(world.engine, world.ids["gA"], "webhook", receiver.url("/hook/gA"), "en", HOOK_SECRET)
    consent(world.engine, world.ids["gB"], "webhook", receiver.url("/hook/gB"), "en", HOOK_SECRET)
    events = world.client.app.state.events
    for event_id, student in (("e-1", "A1"), ("e-2", "B1")):
        events.publish(ChildLeft(school_id=world.ids["s1"], event_id=event_id, kind="self_dismiss", student=student,
                                 guardian=None, kiosk="gate-1", at=AT))
    with world.session() as session:  # both gave up after their last try (as the parking test above shows)
        session.execute(sa.update(Notification).values(state="parked", tries=6, last_error="ConnectError: refused"))
        session.commit()
        ids = {n.recipient: n.id for n in session.exec(select(Notification))}
    mine, theirs = ids[f"g{world.ids['gA']}"], ids[f"g{world.ids['gB']}"]
    admin, url = world.as_("admin1"), "/api/v1/schools/s1/notifications"
    again = world.client.post(f"{url}/{mine}/resend", headers=admin)
    assert again.status_code == 200, again.text
    assert (again.json()["state"], again.json()["tries"], again.json()["last_error"]) == ("pending", 0, "")
    assert world.client.post(f"{url}/{mine}/resend", headers=admin).status_code == 409  # not parked now
    assert world.client.post(f"{url}/999999/resend", headers=admin).status_code == 404
    assert world.client.post(f"{url}/{mine}/resend", headers=world.as_("admin2")).status_code == 403
    # gB withdrew the consent since: sent again, it is parked again, nothing goes out.
    assert world.client.delete("/api/v1/schools/s1/me/notifications/consents/webhook", headers=world.as_("parentB")).status_code == 204
    assert world.client.post(f"{url}/{theirs}/resend", headers=admin).status_code == 200
    with world.session() as session:
        assert outbox.dispatch_due(session, now=NOW, channels={"webhook": channels.Webhook(httpx.Client(timeout=2))}) == 1
    [(headers, body)] = receiver.hooks("/hook/gA")
    assert headers["X-Schoolgate-Id"] == str(mine) and body["text"] == "学生A1 walked out alone at gate-1 at 2030-09-02 16:00."
    assert receiver.hooks("/hook/gB") == []
    parked = world.client.get(f"{url}?state=parked", headers=admin).json()
    assert [(n["id"], n["last_error"]) for n in parked] == [(theirs, "consent withdrawn")]


# --- issue 16, second step: the other messages -------------------------------------------------------


@pytest.mark.parametrize(("relation", "language", "shown"), [
    ("妈妈", "en", "mother"), ("妈妈", "zh_CN", "妈妈"), ("Dad", "zh_CN", "爸爸"), ("Dad", "en", "father"),
    ("外婆", "en", "grandmother"), ("干妈", "en", "a guardian"), ("干妈", "zh_CN", "干妈"), ("Godfather", "en", "Godfather"),
])
def test_the_relation_is_shown_in_the_readers_language(relation, language, shown):
    assert outbox.relation_text(relation, language) == shown


def prefer(engine, guardian: int, **fields) -> None:
    with Session(engine) as session:
        session.add(NotifyPreference(guardian_id=guardian, **fields))
        session.commit()


def test_a_check_in_reaches_only_the_guardians_who_asked_for_it(school):
    engine, g = school
    consent(engine, g["mum"], "webhook", "http://127.0.0.1:9/mum", "zh_CN", HOOK_SECRET)
    consent(engine, g["dad"], "webhook", "http://127.0.0.1:9/dad", "en", HOOK_SECRET)
    consent(engine, g["barred"], "webhook", "http://127.0.0.1:9/barred", "en", HOOK_SECRET)
    prefer(engine, g["mum"], events=["checked_in", "picked_up"])
    prefer(engine, g["barred"], events=["checked_in"])
    ingest_for(engine).process([Gate().event(kind="checkin", student="S1")])
    assert outbox_rows(engine) == [(f"g{g['mum']}", "webhook", "pending", "小明已于 2030-09-02 16:00 在 k1 签到。")]
    with Session(engine) as session:
        assert session.exec(select(Notification.kind)).one() == "checked_in"


def test_a_barred_persons_attempt_tells_the_guardians_at_once_even_in_their_quiet_hours(school):
    engine, g = school
    consent(engine, g["mum"], "webhook", "http://127.0.0.1:9/mum", "en", HOOK_SECRET)
    consent(engine, g["barred"], "webhook", "http://127.0.0.1:9/barred", "en", HOOK_SECRET)
    # 16:00 in Shanghai is within mum's quiet hours, and she turned everything off: safety goes anyway.
    prefer(engine, g["mum"], events=[], quiet_from=time(15, 0), quiet_until=time(17, 0))
    gate = Gate()
    ingest_for(engine).process([gate.event(kind="pickup_denied", student="S1", guardian=f"g{g['barred']}", reason="barred"),
                                gate.event(kind="pickup_denied", student="S1", reason="not_linked"),
                                gate.event(kind="checkin", student="S1")])
    with Session(engine) as session:
        [n] = session.exec(select(Notification)).all()
    assert (n.recipient, n.kind, n.next_try_at) == (f"g{g['mum']}", "barred_attempt", NOW)
    assert n.body == "Someone barred from picking up 小明 tried to at k1 at 2030-09-02 16:00; the child was not handed over."


def test_quiet_hours_hold_a_message_until_they_end_in_the_schools_zone(school):
    engine, g = school
    consent(engine, g["mum"], "webhook", "http://127.0.0.1:9/mum", "zh_CN", HOOK_SECRET)
    consent(engine, g["dad"], "webhook", "http://127.0.0.1:9/dad", "en", HOOK_SECRET)
    prefer(engine, g["mum"], quiet_from=time(15, 30), quiet_until=time(16, 30))  # NOW is 16:00:05 in Shanghai
    prefer(engine, g["dad"], quiet_from=time(22, 0), quiet_until=time(7, 0))  # over midnight; not now
    ingest_for(engine).process([Gate().event(kind="self_dismiss", student="S1")])
    with Session(engine) as session:
        due = {n.recipient: clock.as_utc(n.next_try_at) for n in session.exec(select(Notification))}
    assert due == {f"g{g['mum']}": datetime(2030, 9, 2, 8, 30, tzinfo=UTC), f"g{g['dad']}": NOW}


def test_a_guardian_chooses_the_channels(school):
    engine, g = school
    consent(engine, g["dad"], "sms", "+8613900000001", "en")
    consent(engine, g["dad"], "email", "dad@example.cn", "en")
    prefer(engine, g["dad"], channels=["email"])
    ingest_for(engine).process([Gate().event(kind="self_dismiss", student="S1")])
    assert [(r[0], r[1]) for r in outbox_rows(engine)] == [(f"g{g['dad']}", "email")]


def care_session(world) -> int:
    with world.session() as session:
        s1 = session.exec(select(School).where(School.code == "s1")).one()
        care = CareSession(school_id=s1.id, group_id=world.ids["groupA"], day=AT.date(), starts_at=AT,
                           ends_at=AT + timedelta(hours=1), place="101教室", created_by="test")
        session.add(care)
        session.commit()
        return care.id


def test_an_absence_not_excused_tells_the_guardians_once(world, monkeypatch):
    monkeypatch.setattr(clock, "utcnow", lambda: NOW)
    consent(world.engine, world.ids["gA"], "webhook", "http://127.0.0.1:9/gA", "en", HOOK_SECRET)
    consent(world.engine, world.ids["gBarred"], "webhook", "http://127.0.0.1:9/gBarred", "en", HOOK_SECRET)
    consent(world.engine, world.ids["gB"], "webhook", "http://127.0.0.1:9/gB", "en", HOOK_SECRET)
    care = care_session(world)
    s1 = world.ids["s1"]
    for _ in range(2):  # told twice (a handler run again): stored once
        world.client.app.state.events.publish(ChildAlertRaised(s1, "absent", "A1", str(care), "gate-1"))
    world.client.app.state.events.publish(ChildAlertRaised(s1, "late_pickup", "A1", str(care), "gate-1"))
    world.client.app.state.events.publish(ChildAlertRaised(s1, "absent", "A1", "999", "gate-1"))  # no such session
    with world.session() as session:
        rows = [(n.recipient, n.kind, n.event_ref, n.body) for n in session.exec(select(Notification))]
    assert rows == [(f"g{world.ids['gA']}", "absent", f"absent:{care}:{world.ids['A1']}",
                     "学生A1 had not checked in for 101教室 by 10 minutes after the start (2030-09-02 16:00).")]


def test_an_excused_absence_tells_nobody(world, monkeypatch):
    """请假: the teacher (or the guardian) excused the day, so the gate's "absent" is no news to anyone."""
    monkeypatch.setattr(clock, "utcnow", lambda: NOW)
    consent(world.engine, world.ids["gA"], "webhook", "http://127.0.0.1:9/gA", "en", HOOK_SECRET)
    care = care_session(world)
    with world.session() as session:
        day = session.get(CareSession, care).day
        student = session.get(Student, world.ids["A1"])
        excuses.excuse(session, school=session.get(School, student.school_id), student=student, day=day,
                       note="看牙医", by_user_id=None)
    world.client.app.state.events.publish(ChildAlertRaised(world.ids["s1"], "absent", "A1", str(care), "gate-1"))
    with world.session() as session:
        assert session.exec(select(Notification)).all() == []


def test_a_one_time_code_issued_and_used_tells_the_childs_guardians_without_the_code(world, monkeypatch):
    monkeypatch.setattr(clock, "local_today", lambda school: date(2030, 9, 2))  # the logins need the real time
    consent(world.engine, world.ids["gA"], "webhook", "http://127.0.0.1:9/gA", "zh_CN", HOOK_SECRET)
    consent(world.engine, world.ids["gBarred"], "webhook", "http://127.0.0.1:9/gBarred", "zh_CN", HOOK_SECRET)
    consent(world.engine, world.ids["gB"], "webhook", "http://127.0.0.1:9/gB", "zh_CN", HOOK_SECRET)
    issued = world.client.post("/api/v1/schools/s1/pickup-codes", headers=world.as_("parentA"),
                               json={"student": "A1", "day": "2030-09-02", "person": "张阿姨"})
    assert issued.status_code == 201, issued.text
    code, code_id = issued.json()["code"], issued.json()["id"]
    used = world.client.post("/api/v1/schools/s1/pickup-codes/redeem", headers=world.as_("guard1"),
                             json={"student": "A1", "code": code})
    assert used.status_code == 200, used.text
    with world.session() as session:
        rows = [(n.recipient, n.kind, n.event_ref, n.body) for n in session.exec(select(Notification).order_by(Notification.id))]
        s1 = session.exec(select(School).where(School.code == "s1")).one()
        when = clock.to_local(session.get(PickupCode, code_id).used_at, s1).strftime("%Y-%m-%d %H:%M")
    ga = f"g{world.ids['gA']}"
    assert rows == [
        (ga, "code_issued", f"pickup_code:{code_id}:issued", "已为学生A1签发 2030-09-02 的一次性接送码，接送人：张阿姨。"),
        (ga, "code_used", f"pickup_code:{code_id}:used", f"学生A1的一次性接送码（接送人：张阿姨）已于 {when} 在 示范小学 使用。"),
    ]
    assert all(code not in body for *_, body in rows)


def test_a_code_used_at_a_gate_is_told_with_the_pickup(school):
    engine, g = school
    consent(engine, g["dad"], "webhook", "http://127.0.0.1:9/dad", "en", HOOK_SECRET)
    with Session(engine) as session:
        s1 = session.exec(select(School)).one()
        ming = session.exec(select(Student).where(Student.student_no == "S1")).one()
        code = PickupCode(school_id=s1.id, student_id=ming.id, day=AT.date(), person="Aunt Zhang", code_hash="x",
                          issued_by="user:parent", issued_at=AT)
        session.add(code)
        session.commit()
        code_id = code.id
    ingest_for(engine).process([Gate().event(kind="pickup", student="S1", note=f"code:{code_id}")])
    assert [(r[0], r[3]) for r in outbox_rows(engine)] == [
        (f"g{g['dad']}", "The one-time pickup code for 小明 (for Aunt Zhang) was used at k1 at 2030-09-02 16:00."),
        (f"g{g['dad']}", "小明 was picked up by a guardian at k1 at 2030-09-02 16:00."),
    ]


# --- the late-pickup ladder, on an injected clock ----------------------------------------------------

GRACE = timedelta(minutes=15)


def ladder_school(engine, g) -> int:
    """A session of 3-2's homework club ending at AT + 10 min (overdue at AT + 25 min), its teacher with a
    phone on file, a duty volunteer without one; 小明's emergency contact (SMS, en)."""
    with Session(engine) as session:
        s1 = session.exec(select(School)).one()
        teacher = Staff(school_id=s1.id, name="李老师", kind="teacher", phone="13600000001", created_by="t")
        helper = Staff(school_id=s1.id, name="志愿者", kind="volunteer", phone="", created_by="t")
        session.add_all([teacher, helper])
        session.flush()
        group = InterestGroup(school_id=s1.id, name="作业班", category="homework", capacity=30, place="101",
                              grades=["3"], weekdays=[1], staff_id=teacher.id, created_by="t")
        session.add(group)
        session.flush()
        care = CareSession(school_id=s1.id, group_id=group.id, day=AT.date(), starts_at=AT - timedelta(hours=1),
                           ends_at=AT + timedelta(minutes=10), place="101教室", created_by="t")
        session.add(care)
        session.flush()
        session.add(DutyAssignment(session_id=care.id, staff_id=helper.id, assigned_by="t"))
        ming = session.exec(select(Student).where(Student.student_no == "S1")).one()
        session.add(EmergencyContact(student_id=ming.id, name="Uncle Li", channel="sms", address="+8613500000009", language="en"))
        session.commit()
        return care.id


def rungs(engine) -> list[tuple[str, str, str]]:
    with Session(engine) as session:
        told = [(n.event_ref.rsplit(":", 1)[1], n.recipient, n.body) for n in session.exec(select(Notification).order_by(Notification.id))]
        told += [("3", "incident", i.kind) for i in session.exec(select(SafetyIncident))]
    return told


def climb(engine, at: datetime) -> int:
    with Session(engine) as session:
        return ladder.escalate(session, now=at, grace=GRACE)


def test_a_late_pickup_climbs_the_ladder_a_step_each_ten_minutes(school):
    engine, g = school
    consent(engine, g["mum"], "webhook", "http://127.0.0.1:9/mum", "zh_CN", HOOK_SECRET)
    consent(engine, g["barred"], "webhook", "http://127.0.0.1:9/barred", "zh_CN", HOOK_SECRET)
    care = ladder_school(engine, g)
    gate = Gate()
    ingest_for(engine).process([gate.event(kind="checkin", student="S1", session=str(care)),
                                gate.event(kind="checkin", student="S2", session=str(care)),
                                gate.event(kind="pickup", student="S2", guardian=f"g{g['other']}")])
    with Session(engine) as session:
        session.exec(sa.delete(Notification))  # the check-ins and S2's pickup: not what this test is about
        session.commit()
    overdue = AT + timedelta(minutes=25)
    assert climb(engine, overdue - timedelta(seconds=1)) == 0
    assert climb(engine, overdue) == 1
    assert rungs(engine) == [("1", f"g{g['mum']}", "小明仍未被接走（101教室，2030-09-02 16:10 已结束）。")]
    assert climb(engine, overdue + timedelta(minutes=9)) == 0  # step 1 once
    assert climb(engine, overdue + timedelta(minutes=10)) == 2
    contact = ("小明 has not been picked up from 101教室 (the session ended at 2030-09-02 16:10) and the guardians "
               "have not come; please help.")
    teacher = "小明仍未被接走（101教室，2030-09-02 16:10 已结束），监护人尚未到达，请协助。"
    assert [(r[0], r[1][0], r[2]) for r in rungs(engine)[1:]] == [("2", "e", contact), ("2", "s", teacher)]
    assert climb(engine, overdue + timedelta(minutes=20)) == 1
    assert climb(engine, overdue + timedelta(minutes=40)) == 0
    assert rungs(engine)[-1] == ("3", "incident", "late_pickup_unresolved")


def test_the_ladder_stops_once_the_child_is_picked_up(school):
    engine, g = school
    consent(engine, g["mum"], "webhook", "http://127.0.0.1:9/mum", "zh_CN", HOOK_SECRET)
    care = ladder_school(engine, g)
    ingest = ingest_for(engine)
    gate = Gate()
    ingest.process([gate.event(kind="checkin", student="S1", session=str(care))])
    overdue = AT + timedelta(minutes=25)
    assert climb(engine, overdue) == 1
    ingest.process([gate.event(kind="pickup", student="S1", guardian=f"g{g['mum']}")])
    assert climb(engine, overdue + timedelta(minutes=10)) == 0
    assert climb(engine, overdue + timedelta(minutes=20)) == 0
    assert [r[0] for r in rungs(engine) if r[0] in ("1", "2", "3")] == ["1"]


def test_a_barred_persons_attempt_is_a_safety_incident_for_the_admin_at_once(school):
    engine, g = school
    gate = Gate()
    event = gate.event(kind="pickup_denied", student="S1", guardian=f"g{g['barred']}", reason="barred")
    ingest_for(engine).process([event])
    ingest_for(engine).process([event])  # the same event again: one incident
    with Session(engine) as session:
        assert [(i.kind, i.kiosk) for i in session.exec(select(SafetyIncident))] == [("barred_attempt", "k1")]


# --- the school's own channels: a WeCom group robot, a DingTalk robot ---------------------------------


def robot_answer(path: str) -> bytes:
    if "bad" in path:  # as WeCom answers an invalid key: 200, and an errcode
        return json.dumps({"errcode": 93000, "errmsg": "invalid webhook url"}).encode()
    return b'{"errcode":0,"errmsg":"ok"}'


@pytest.fixture
def robots():
    found = Receiver(answer=robot_answer).start()
    yield found
    found.stop()


def school_channel(engine, **fields) -> int:
    with Session(engine) as session:
        row = SchoolChannel(school_id=session.exec(select(School)).first().id, **fields)
        session.add(row)
        session.commit()
        return row.id


def robot_channels():
    return {"wecom": channels.WeCom(httpx.Client(timeout=2)),
            "dingtalk": channels.DingTalk(httpx.Client(timeout=2), now=lambda: NOW)}


def test_a_barred_attempt_reaches_the_admins_wecom_and_dingtalk_robots_at_once(school, robots):
    engine, g = school
    wecom = school_channel(engine, channel="wecom", audience="admin", address=robots.url("/cgi-bin/webhook/send?key=K1"))
    ding = school_channel(engine, channel="dingtalk", audience="admin", address=robots.url("/robot/send?access_token=T1"),
                          secret="SEC-ding", language="en")
    school_channel(engine, channel="wecom", audience="staff", address=robots.url("/staff"))  # not for this
    ingest_for(engine).process([Gate().event(kind="pickup_denied", student="S1", guardian=f"g{g['barred']}", reason="barred")])
    with Session(engine) as session:
        assert outbox.dispatch_due(session, now=NOW, channels=robot_channels()) == 2
    [(path1, headers1, body1), (path2, _, body2)] = sorted(robots.got)
    assert path1 == "/cgi-bin/webhook/send?key=K1"
    assert json.loads(body1) == {"msgtype": "text", "text": {
        "content": "2030-09-02 16:00 在 k1：受监护禁令限制的人试图接走小明，未予交接。"}}
    # DingTalk's signature by hand: timestamp in ms, HMAC-SHA256(secret, "<timestamp>\n<secret>"), base64, URL-quoted.
    timestamp = "1914566405000"
    sign = base64.b64encode(hmac.new(b"SEC-ding", f"{timestamp}\nSEC-ding".encode(), hashlib.sha256).digest()).decode()
    assert path2 == f"/robot/send?access_token=T1&timestamp={timestamp}&sign={quote(sign, safe='')}"
    assert json.loads(body2)["text"]["content"] == (
        "2030-09-02 16:00 at k1: a person barred by a custody order tried to pick up 小明; the child was not handed over.")
    with Session(engine) as session:
        assert sorted(n.recipient for n in session.exec(select(Notification))) == [f"c{wecom}", f"c{ding}"]


def test_a_robot_answering_an_errcode_is_a_failed_try_and_a_removed_channel_is_parked(school, robots):
    engine, g = school
    bad = school_channel(engine, channel="wecom", audience="admin", address=robots.url("/bad?key=x"))
    gone = school_channel(engine, channel="dingtalk", audience="admin", address=robots.url("/robot/send?access_token=T"))
    ingest_for(engine).process([Gate().event(kind="pickup_denied", student="S1", reason="barred")])
    with Session(engine) as session:
        session.delete(session.get(SchoolChannel, gone))
        session.commit()
        assert outbox.dispatch_due(session, now=NOW, channels=robot_channels()) == 0
        states = {n.recipient: (n.state, n.last_error) for n in session.exec(select(Notification))}
    assert states == {f"c{bad}": ("pending", "RuntimeError: errcode 93000: invalid webhook url"),
                      f"c{gone}": ("parked", "channel removed")}


def test_the_ladder_tells_the_staff_channel_then_the_admin_channel(school, robots):
    engine, g = school
    staff = school_channel(engine, channel="wecom", audience="staff", address=robots.url("/staff"))
    admin = school_channel(engine, channel="wecom", audience="admin", address=robots.url("/admin"))
    care = ladder_school(engine, g)
    ingest_for(engine).process([Gate().event(kind="checkin", student="S1", session=str(care))])
    overdue = AT + timedelta(minutes=25)
    climb(engine, overdue + timedelta(minutes=10))
    with Session(engine) as session:
        assert {n.recipient for n in session.exec(select(Notification).where(Notification.recipient.startswith("c")))} == {f"c{staff}"}
    climb(engine, overdue + timedelta(minutes=20))
    with Session(engine) as session:
        [n] = session.exec(select(Notification).where(Notification.recipient == f"c{admin}")).all()
    assert n.body == "小明仍未被接走（101教室，2030-09-02 16:10 已结束），已记录安全事件。"


# --- a guardian's choices and consents over the API ---------------------------------------------------


def test_a_guardian_consents_chooses_and_withdraws_and_the_admin_sees_it(world, monkeypatch):
    monkeypatch.setattr(clock, "local_today", lambda school: date(2030, 9, 2))
    me = "/api/v1/schools/s1/me/notifications"
    parent = world.as_("parentA")
    put = world.client.put(f"{me}/consents/sms", headers=parent, json={"address": "+8613900000001", "language": "en"})
    assert put.status_code == 200, put.text
    assert [(c["channel"], c["address"], c["language"]) for c in put.json()["consents"]] == [("sms", "+8613900000001", "en")]
    assert world.client.put(f"{me}/consents/webhook", headers=parent, json={"address": "https://x.example/h"}).status_code == 422
    assert world.client.put(f"{me}/consents/wecom", headers=parent, json={"address": "x"}).status_code == 422
    chosen = world.client.put(me, headers=parent, json={"events": ["checked_in", "picked_up"], "quiet_from": "21:00:00",
                                                        "quiet_until": "07:00:00"})
    assert chosen.status_code == 200, chosen.text
    assert (chosen.json()["events"], chosen.json()["quiet_from"], chosen.json()["quiet_until"]) == (
        ["checked_in", "picked_up"], "21:00:00", "07:00:00")
    bad = world.client.put(me, headers=parent, json={"events": ["gossip"]})
    assert bad.status_code == 422 and "gossip" in bad.json()["detail"][0]["msg"]
    assert world.client.put(me, headers=parent, json={"quiet_from": "21:00:00"}).status_code == 422
    # The admin sees the same; another school's guardian id is not found.
    seen = world.client.get(f"/api/v1/schools/s1/notification-preferences/{world.ids['gA']}", headers=world.as_("admin1"))
    assert seen.json()["events"] == ["checked_in", "picked_up"] and seen.json()["consents"][0]["channel"] == "sms"
    # What the guardian chose is what the outbox does: a check-in now reaches gA's SMS.
    world.client.app.state.events.publish(ChildLeft(school_id=world.ids["s1"], event_id="e-9", kind="checkin", student="A1",
                                                     guardian=None, kiosk="gate-1", at=AT))
    with world.session() as session:
        assert [(n.kind, n.channel) for n in session.exec(select(Notification))] == [("checked_in", "sms")]
    assert world.client.delete(f"{me}/consents/sms", headers=parent).status_code == 204
    assert world.client.get(me, headers=parent).json()["consents"] == []


def test_the_admin_keeps_the_schools_own_channels_and_their_secrets_are_never_shown(world):
    admin = world.as_("admin1")
    url = "/api/v1/schools/s1/notification-channels"
    added = world.client.post(url, headers=admin, json={"channel": "dingtalk", "audience": "staff", "secret": "S",
                                                        "address": "https://oapi.dingtalk.com/robot/send?access_token=t"})
    assert added.status_code == 201, added.text
    assert added.json() == {"id": added.json()["id"], "channel": "dingtalk", "audience": "staff", "language": "zh_CN",
                            "address": "https://oapi.dingtalk.com/robot/send?access_token=t", "signed": True}
    assert world.client.post(url, headers=admin, json={"channel": "fax", "address": "x"}).status_code == 422
    assert world.client.get(url, headers=world.as_("admin2")).status_code == 403
    assert world.client.delete(f"{url}/{added.json()['id']}", headers=admin).status_code == 204
    assert world.client.delete(f"{url}/{added.json()['id']}", headers=admin).status_code == 404
    assert world.client.get(url, headers=admin).json() == []


def test_the_admin_records_a_childs_emergency_contacts_only_with_their_consent(world):
    admin = world.as_("admin1")
    url = "/api/v1/schools/s1/students/A1/emergency-contacts"
    uncle = {"name": "Uncle Li", "channel": "sms", "address": "+8613500000009", "language": "en", "consented": True}
    refused = world.client.post(url, headers=admin, json={**uncle, "consented": False})
    assert refused.status_code == 422 and "Uncle Li" in refused.json()["detail"][0]["msg"]
    bad_phone = world.client.post(url, headers=admin, json={**uncle, "address": "call me"})
    assert bad_phone.status_code == 422 and "call me" in bad_phone.json()["detail"][0]["msg"]
    assert world.client.post(url, headers=admin, json={**uncle, "channel": "email", "address": "li.example"}).status_code == 422
    assert world.client.post(url, headers=admin, json={**uncle, "channel": "wecom"}).status_code == 422
    made = world.client.post(url, headers=admin, json=uncle)
    assert made.status_code == 201, made.text
    contact = made.json()["id"]
    assert [(c["name"], c["channel"], c["address"], c["language"]) for c in world.client.get(url, headers=admin).json()] == [
        ("Uncle Li", "sms", "+8613500000009", "en")]
    # Another school's admin, another school's child, a guardian: not theirs.
    assert world.client.get(url, headers=world.as_("admin2")).status_code == 403
    assert world.client.get(url, headers=world.as_("parentA")).status_code == 403
    assert world.client.get("/api/v1/schools/s1/students/X1/emergency-contacts", headers=admin).status_code == 404
    assert world.client.delete(f"/api/v1/schools/s1/students/B1/emergency-contacts/{contact}", headers=admin).status_code == 404
    assert world.client.delete(f"{url}/{contact}", headers=admin).status_code == 204
    assert world.client.get(url, headers=admin).json() == []


def test_a_removed_emergency_contact_gets_nothing_that_still_waited(school, receiver):
    engine, g = school
    with Session(engine) as session:
        s1 = session.exec(select(School)).one()
        ming = session.exec(select(Student).where(Student.student_no == "S1")).one()
        kept = EmergencyContact(student_id=ming.id, name="Uncle Li", channel="sms", address="+8613500000009")
        gone = EmergencyContact(student_id=ming.id, name="Aunt Wu", channel="sms", address="+8613500000008")
        session.add_all([kept, gone])
        session.flush()
        outbox.store(session, [{"school_id": s1.id, "event_ref": "late:1:1:2", "recipient": f"e{c.id}", "kind": "late_pickup",
                                "channel": "sms", "address": c.address, "language": "zh_CN", "body": "小明仍未被接走",
                                "state": "pending", "tries": 0, "next_try_at": NOW, "last_error": "", "created_at": NOW}
                               for c in (kept, gone)])
        session.delete(gone)
        session.commit()
        gone_id = gone.id
        sms = channels.SmsGateway(receiver.url("/sms?to={to}&text={text}&ref={id}"), httpx.Client(timeout=2))
        assert outbox.dispatch_due(session, now=NOW, channels={"sms": sms}) == 1
    assert [m["to"] for m in receiver.sms()] == ["+8613500000009"]
    with Session(engine) as session:
        [parked] = session.exec(select(Notification).where(Notification.state == "parked")).all()
    assert (parked.recipient, parked.last_error) == (f"e{gone_id}", "contact removed")


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_a_schools_own_sms_gateway_and_mail_server_carry_its_messages(school, receiver):
    engine, g = school
    consent(engine, g["dad"], "sms", "+8613900000001", "en")
    consent(engine, g["dad"], "email", "dad@example.cn", "en")
    box, logins = Mailbox(), []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=(auth_data.login, auth_data.password) == (b"school", b"pw"))

    controller = Controller(box, hostname="127.0.0.1", port=free_port(), authenticator=authenticator,
                            auth_required=True, auth_require_tls=False)
    controller.start()
    try:
        with Session(engine) as session:
            s1 = session.exec(select(School)).one()
            session.add(SchoolNotifySettings(school_id=s1.id, sms_url=receiver.url("/own-sms?to={to}&text={text}&ref={id}"),
                                             smtp_host="127.0.0.1", smtp_port=controller.port, smtp_user="school",
                                             smtp_password="pw", email_from="gate@s1.example"))
            session.commit()
        ingest_for(engine).process([Gate().event(kind="pickup", student="S1", guardian=f"g{g['dad']}")])
        # Central has neither an SMS gateway nor a mail server of its own: the school's carry its messages.
        with Session(engine) as session:
            assert outbox.dispatch_due(session, now=NOW, channels={}) == 2
    finally:
        controller.stop()
    en = "小明 was picked up by father at k1 at 2030-09-02 16:00."
    [(path, _, _)] = receiver.got
    query = {k: v[0] for k, v in parse_qs(urlsplit(path).query).items()}
    assert (urlsplit(path).path, query["to"], query["text"]) == ("/own-sms", "+8613900000001", en)
    [(to, mail)] = box.mails
    assert (to, mail["From"], mail.get_content().strip()) == (["dad@example.cn"], "gate@s1.example", en)
    assert logins == [(b"school", b"pw")]


def test_the_admin_sets_the_schools_own_gateway_and_mail_server_checked_and_the_password_never_shown(world):
    admin = world.as_("admin1")
    url = "/api/v1/schools/s1/notification-settings"
    assert world.client.get(url, headers=admin).json()["sms_url"] == ""
    for sms_url, named in (("ftp://sms.example/{to}/{text}", "ftp://sms.example"), ("https://sms.example/?to={to}", "{text}"),
                           ("https://sms.example/?to={to}&t={text}&k={key}", "key")):
        bad = world.client.put(url, headers=admin, json={"sms_url": sms_url})
        assert bad.status_code == 422 and named in bad.json()["detail"][0]["msg"], bad.text
    bad = world.client.put(url, headers=admin, json={"smtp_host": "mail.s1.example", "email_from": "gate"})
    assert bad.status_code == 422 and "gate" in bad.json()["detail"][0]["msg"]
    good = {"sms_url": "https://sms.example/send?to={to}&text={text}&ref={id}", "smtp_host": "mail.s1.example",
            "smtp_port": 587, "smtp_starttls": True, "smtp_user": "gate", "smtp_password": "pw", "email_from": "gate@s1.example"}
    put = world.client.put(url, headers=admin, json=good)
    assert put.status_code == 200, put.text
    assert put.json() == {**{k: v for k, v in good.items() if k != "smtp_password"}, "smtp_password_set": True}
    # Changed without a password: the stored one is kept; never shown.
    again = world.client.put(url, headers=admin, json={**good, "smtp_password": None, "smtp_port": 465})
    assert (again.json()["smtp_port"], again.json()["smtp_password_set"]) == (465, True)
    assert "pw" not in world.client.get(url, headers=admin).text
    assert world.client.get(url, headers=world.as_("admin2")).status_code == 403


# --- integrators' webhooks -------------------------------------------------------------------------------


def test_an_integrator_subscribes_gets_signed_deliveries_and_reads_their_answers(world, receiver):
    admin = world.as_("admin1")
    made = world.client.post("/api/v1/schools/s1/webhooks", headers=admin,
                             json={"url": receiver.url("/erp"), "kinds": ["picked_up", "barred_attempt"]})
    assert made.status_code == 201, made.text
    sub, secret = made.json()["id"], made.json()["secret"]
    assert len(secret) == 64 and "secret" not in world.client.get("/api/v1/schools/s1/webhooks", headers=admin).json()[0]
    assert world.client.post("/api/v1/schools/s1/webhooks", headers=admin,
                              json={"url": receiver.url("/erp"), "kinds": ["gossip"]}).status_code == 422
    events = world.client.app.state.events
    events.publish(ChildLeft(school_id=world.ids["s1"], event_id="e-1", kind="pickup", student="A1", guardian=None,
                             kiosk="gate-1", at=AT))
    events.publish(ChildLeft(school_id=world.ids["s1"], event_id="e-2", kind="checkin", student="A1", guardian=None,
                             kiosk="gate-1", at=AT))  # not subscribed
    with world.session() as session:
        assert outbox.dispatch_due(session, now=NOW, channels={"webhook": channels.Webhook(httpx.Client(timeout=2), now=lambda: NOW)}) == 1
    [(path, headers, raw)] = receiver.got
    assert json.loads(raw) == {"event": "event:e-1", "kind": "picked_up", "school": "s1", "student": "A1",
                               "at": "2030-09-02T08:00:00Z", "where": "gate-1"}
    assert headers["X-Schoolgate-Signature"] == hmac.new(secret.encode(), b"1914566405." + raw, hashlib.sha256).hexdigest()
    listed = world.client.get(f"/api/v1/schools/s1/webhooks/{sub}/deliveries", headers=admin).json()
    assert [(d["event_ref"], d["state"], d["tries"], d["answer"]) for d in listed] == [("event:e-1", "sent", 1, "200")]
    assert world.client.get(f"/api/v1/schools/s1/webhooks/{sub}/deliveries", headers=world.as_("admin2")).status_code == 403
    # Unsubscribed: what still waits is parked, nothing more is stored.
    assert world.client.delete(f"/api/v1/schools/s1/webhooks/{sub}", headers=admin).status_code == 204
    assert world.client.get(f"/api/v1/schools/s1/webhooks/{sub}/deliveries", headers=admin).status_code == 404


def test_the_openapi_documents_the_webhook_payload(world):
    spec = world.client.get("/openapi.json").json()
    hook = spec["webhooks"]["schoolgate-event"]["post"]
    schema = hook["requestBody"]["content"]["application/json"]["schema"]
    assert schema["$ref"].endswith("/WebhookPayload")
    assert set(spec["components"]["schemas"]["WebhookPayload"]["properties"]) == {"event", "kind", "school", "student", "at", "where"}
    assert "X-Schoolgate-Signature" in hook["description"]


def test_a_separate_ingest_worker_stores_the_guardians_notifications_for_what_it_stores(school, tmp_path):
    """``schoolgate central ingest`` (a district's extra worker, docs/scale.md), a real process on the
    embedded broker: a pickup it stores is in the outbox for the guardian at once, for ``central
    serve``'s sender to send; before, it reached the outbox only when central serve next started."""
    engine, g = school
    consent(engine, g["mum"], "webhook", "http://127.0.0.1:9/hook/mum", "zh_CN", HOOK_SECRET)
    url = str(engine.url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHOOLGATE_")}
    with Broker(url) as broker:
        env.update(SCHOOLGATE_DATABASE_URL=url, SCHOOLGATE_MQTT_URL=broker.central_url, SCHOOLGATE_TOPIC_PREFIX="sg/v1",
                   SCHOOLGATE_SIGNING_KEY_FILE=str(tmp_path / "signing.key"))
        worker = subprocess.Popen([sys.executable, "-m", "schoolgate", "central", "ingest"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            topic, payload, _ = Gate().event(kind="pickup", student="S1", guardian=f"g{g['mum']}")
            host, port = broker.probe_url.rsplit("@", 1)[1].split(":")
            user, password = broker.probe_url.split("//", 1)[1].split("@", 1)[0].split(":")
            # Published again until stored: the worker may not have subscribed yet (a kiosk resends so too).
            def stored() -> bool:
                paho_publish.single(topic, payload, qos=1, hostname=host, port=int(port), auth={"username": user, "password": password})
                with engine.connect() as conn:
                    return conn.execute(sa.text("SELECT count(*) FROM notification")).scalar() > 0
            wait_for(stored, what="the worker's pickup in the notification outbox")
        finally:
            worker.terminate()
            _, err = worker.communicate(timeout=30)
    rows = outbox_rows(engine)
    assert [(r, c, s) for r, c, s, _ in rows] == [(f"g{g['mum']}", "webhook", "pending")], err.decode()[-2000:]
    assert "小明" in rows[0][3]
