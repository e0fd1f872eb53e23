"""The live pages' streams over real HTTP (uvicorn serving the test's app, each page its own browser
session): one change reaches every open page with one render per view, each page with its own session's
form token and never another's, and a login that ended (logged out, revoked elsewhere, the user made
inactive) is sent ``logout`` instead of the children's data, at the next change or the next round, and its
stream ends. The rounds' interval is the setting ``live_refresh_seconds`` (20 s by default): the test that
needs a round sets it to a fraction of a second."""

from __future__ import annotations

import contextlib
import json
import queue
import threading

import httpx
import pytest
import uvicorn
from sgtest import wait_for
from sqlmodel import select

from central.accounts import users
from central.accounts.models import User
from central.web import roster as live_roster
from gateway.mqtt import free_port

from .conftest import PASSWORD
from .test_pages import csrf_of, pages, states  # noqa: F401  (pages: the fixture)

LOGOUT = {"event": "logout", "data": "{}"}


@pytest.fixture
def served(pages):  # noqa: F811
    server = uvicorn.Server(uvicorn.Config(pages.client.app, host="127.0.0.1", port=free_port(), lifespan="off", log_level="warning",
                                           timeout_graceful_shutdown=0.2))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=10, what="uvicorn serving the pages")
    pages.url = f"http://127.0.0.1:{server.config.port}"
    pages.opened = []
    yield pages
    for live in pages.opened:
        live.close()
    server.should_exit = True
    thread.join(10)


class Live:
    """A logged-in browser session (its own cookie jar) with a live page's stream open, read in a thread."""

    def __init__(self, served, user: str, path: str = "/teacher/live", page: str = "/teacher") -> None:
        self.http = httpx.Client(base_url=served.url, timeout=10, follow_redirects=True)
        login = self.http.get("/login")
        r = self.http.post("/login", data={"username": user, "password": PASSWORD, "csrf": csrf_of(login.text)})
        assert r.status_code == 200, r.text
        self.csrf = csrf_of(self.http.get(page).text)
        self.events: queue.Queue = queue.Queue()
        self.reader = httpx.Client(base_url=served.url, cookies=self.http.cookies, timeout=30)
        served.opened.append(self)
        threading.Thread(target=self._read, args=(path,), daemon=True).start()

    def _read(self, path: str) -> None:
        with contextlib.suppress(httpx.HTTPError, RuntimeError, ValueError), self.reader.stream("GET", path) as r:  # cut at close()
            event: dict[str, str] = {}
            for line in r.iter_lines():
                if not line:
                    if "event" in event:
                        self.events.put(event)
                    event = {}
                elif not line.startswith(":"):  # a comment: "nothing new this round"
                    key, _, value = line.partition(": ")
                    event[key] = value
        self.events.put({"event": "closed"})

    def next(self) -> dict:
        return self.events.get(timeout=10)

    def html(self) -> str:
        event = self.next()
        assert event["event"] == "roster", event
        return json.loads(event["data"])["html"]

    def close(self) -> None:
        self.reader.close()
        self.http.close()


def own_token_only(html: str, live: Live, forms: int, everyone) -> None:
    """``html`` has ``forms`` excuse forms, each with ``live``'s own form token, the token nowhere else
    and no other session's anywhere."""
    assert html.count('name="csrf"') == html.count(f'name="csrf" value="{live.csrf}"') == html.count(live.csrf) == forms, html
    assert not [other.csrf for other in everyone if other is not live and other.csrf in html]


def test_one_change_reaches_every_page_rendered_once_per_view_each_with_its_own_token(served, monkeypatch):
    builds = []
    build = live_roster.build
    monkeypatch.setattr(live_roster, "build", lambda *a, **k: builds.append(1) or build(*a, **k))
    phone, tablet, laptop = (Live(served, "teacherA") for _ in range(3))
    principal = Live(served, "admin1")
    first = {"phone": phone.html(), "tablet": tablet.html(), "laptop": laptop.html(), "principal": principal.html()}
    assert states(first["phone"]) == {"A1": "expected"} and states(first["principal"]) == {"A1": "expected", "B1": "expected"}
    lives = {"phone": phone, "tablet": tablet, "laptop": laptop, "principal": principal}
    assert len({live.csrf for live in lives.values()}) == 4
    # teacherA's three pages share one rendering of their view: each with its own token in its forms.
    for name, forms in (("phone", 1), ("tablet", 1), ("laptop", 1), ("principal", 2)):
        own_token_only(first[name], lives[name], forms, lives.values())

    assert phone.http.post("/logout", data={"csrf": phone.csrf}).status_code == 200  # the phone logs out: its token revoked
    renders = served.client.app.state.live_shared.renders
    builds.clear()
    # The admin excuses A1 (groupA, teacherA's): one change for every open page of the school. The note
    # spells the form-token slots, old and new: escaped text from a user must never become a token.
    note = "病假 <csrf-slot> @@csrf-slot@@"
    r = principal.http.post("/teacher/excuse", data={"student": "A1", "note": note, "csrf": principal.csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert phone.next() == LOGOUT  # the ended login is sent no roster again
    assert phone.next() == {"event": "closed"}
    html = principal.html()
    assert states(html) == {"A1": "absent", "B1": "expected"} and "病假 &lt;csrf-slot&gt; @@csrf-slot@@" in html
    tablet_html, laptop_html = tablet.html(), laptop.html()
    assert states(tablet_html) == states(laptop_html) == {"A1": "absent"}
    # A1 excused: its form gone, B1's left on the admin's page.
    for live, shown, forms in ((tablet, tablet_html, 0), (laptop, laptop_html, 0), (principal, html, 1)):
        own_token_only(shown, live, forms, lives.values())
    # teacherA's view rendered once for both pages left, the admin's once; each built the rosters once.
    assert served.client.app.state.live_shared.renders - renders == 2
    assert len(builds) == 2


def test_a_user_made_inactive_stops_receiving_at_the_next_change(served):
    teacher = Live(served, "teacherA")
    assert states(teacher.html()) == {"A1": "expected"}
    with served.session() as session:  # straight in the database: as another central process would
        user = session.exec(select(User).where(User.username == "teacherA")).one()
        user.active = False
        session.add(user)
        session.commit()
    admin = Live(served, "admin1")
    admin.html()
    assert admin.http.post("/teacher/excuse", data={"student": "A1", "note": "事假", "csrf": admin.csrf}).status_code == 200
    assert teacher.next() == LOGOUT
    assert teacher.next() == {"event": "closed"}
    assert "事假" in admin.html()


def test_a_login_ended_elsewhere_without_a_change_is_sent_to_login_at_the_next_round(served):
    served.settings.live_refresh_seconds = 0.2  # the rounds' interval (20 s by default)
    teacher = Live(served, "teacherA")
    guard = Live(served, "admin1", path="/rollcall/live", page="/rollcall")
    teacher.html()
    assert guard.next()["event"] == "roster"
    with served.session() as session:  # revoked elsewhere: every login of teacherA (as a password reset does)
        users.revoke_all(session, user_id=session.exec(select(User.id).where(User.username == "teacherA")).one())
        session.commit()
    assert teacher.next() == LOGOUT  # no change of the school: the clock's round found it
    assert guard.http.post("/logout", data={"csrf": guard.csrf}).status_code == 200  # the roll call's own login, in another tab
    assert guard.next() == LOGOUT
    assert teacher.next() == guard.next() == {"event": "closed"}
