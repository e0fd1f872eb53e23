"""The school's feed at one gate (issue 13): the other gates' events are kept once by id, folded into the
day like the gate's own, rebuilt after a restart, and decisions use the school's view. The follower
verifies central's signature, finds gaps and catches up; an offline "not on site" says since when the
other gates are unknown. Central's side is tests/central/test_feed.py; the whole path is
tests/integration/test_feed.py."""

from __future__ import annotations

import logging

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from gateworld import KEY, Clock, local, sign_in, snapshot

from gateway import protocol
from gateway.feed import CATCHING_UP, CURRENT, OFFLINE, FeedError, FeedFollower
from hardware import CardTap
from kiosk.config import KioskSettings
from kiosk.runtime import Kiosk

CENTRAL = Ed25519PrivateKey.from_private_bytes(bytes.fromhex("a5" * 32))
PUBLIC = protocol.parse_public_key(protocol.public_key_hex(CENTRAL))
CHILD, FATHER = "04A1B2C3", "DEADBEEF"  # S1 王子涵 and g1 王建国 (gateworld)


def entry(pos: int, kind: str, *, kiosk: str = "k2", at: str = "16:05", **fields) -> dict:
    return {"pos": pos, "id": f"ev-{kiosk}-{pos}", "kiosk": kiosk, "seq": pos, "kind": kind,
            "at": local(at).isoformat(timespec="milliseconds"), **fields}


def feed_events(*entries: dict) -> list[protocol.FeedEvent]:
    return [protocol.FeedEvent.model_validate(e) for e in entries]


def sealed(entries: list[dict], head: int, *, key=CENTRAL, school: str = "s1") -> bytes:
    return protocol.seal(protocol.canonical_json(protocol.feed_message(school, entries, head)), key)


@pytest.fixture
def clock():
    return Clock()


def make_gate(tmp_path, clock, kiosk: str = "k1") -> Kiosk:
    gate = Kiosk(KioskSettings(school="s1", kiosk=kiosk, data_dir=tmp_path, mqtt_url=None, secret=KEY.hex()),
                 sync=False, clock=clock)
    gate.store.apply_snapshot(protocol.RosterSnapshot.model_validate(snapshot()))
    return gate


@pytest.fixture
def gate(tmp_path, clock):
    gate = make_gate(tmp_path, clock)
    yield gate
    gate.close()


def tap(gate: Kiosk, card: str, clock: Clock):
    shown = gate.handle(CardTap(card, "sim", "sim", clock()))
    clock.advance(seconds=3)  # past the debounce
    return shown


# --- the store and the fold -------------------------------------------------------------------------


def test_a_child_checked_in_at_another_gate_is_on_site_here_with_that_gate(gate):
    gate.apply_feed(feed_events(entry(1, "checkin", student="S1", session="10")))
    assert gate.state.on_site("S1")
    assert gate.came_through() == {"S1": "k2"}
    assert gate.counts().on_site == 1
    assert gate.feed_pos == 1


def test_each_feed_event_is_folded_once_by_id(gate):
    first = entry(1, "checkin", student="S1", session="10")
    gate.apply_feed(feed_events(first, entry(2, "pickup", student="S1", guardian="g1")))
    gate.apply_feed(feed_events(first))  # sent again (QoS 1, a catch-up over a message already heard)
    # The repeated check-in must not bring the child back on site after the pickup.
    assert gate.state.gone == {"S1": "pickup"}
    assert not gate.state.on_site("S1")
    assert gate.feed_pos == 2


def test_the_gates_own_events_coming_back_change_nothing_and_move_the_place_on(gate, clock):
    assert tap(gate, CHILD, clock).outcome == "checked_in"
    own = gate.store.day_events(gate.state.day)[0]
    gate.apply_feed(feed_events(entry(1, "checkin", kiosk="k1", student="S1", session="10") | {"id": own["id"]}))
    assert gate.store.feed_events(gate.state.day) == []
    assert gate.state.checked_in == {"S1": "10"}
    assert gate.feed_pos == 1


def test_what_happened_elsewhere_folds_like_the_gates_own(gate):
    gate.apply_feed(feed_events(
        entry(1, "checkin", student="S1", session="10"),
        entry(2, "checkin", student="S2", session="10"),
        entry(3, "pickup", student="S2", note="code:7"),  # a one-time code used at gate k2
        entry(4, "staff_on", staff="st1"),  # a teacher on duty, tapped in at k2
        entry(5, "staff_on", staff="st2", note="guard"),  # k2's guard signs in at k2's console
    ))
    state = gate.state
    assert state.on_site("S1") and state.gone == {"S2": "pickup"}
    assert state.used_codes == {"7"}
    assert state.on_duty == {"st1", "st2"}
    assert state.guard is None  # k2's guard is not signed in at this gate
    assert state.guards == {"k2": "st2"}


def test_a_place_after_a_gap_is_kept_but_the_last_place_waits(gate):
    gate.apply_feed(feed_events(entry(1, "checkin", student="S1", session="10")))
    gate.apply_feed(feed_events(entry(3, "checkin", student="S2", session="10")))
    assert gate.feed_pos == 1  # place 2 is missing: a catch-up asks after 1
    gate.apply_feed(feed_events(entry(2, "checkin", student="S4", session="11")))
    assert gate.feed_pos == 3
    assert set(gate.state.checked_in) == {"S1", "S2", "S4"}


def test_a_restart_rebuilds_the_same_school_day(tmp_path, clock):
    gate = make_gate(tmp_path, clock)
    sign_in(gate)
    gate.apply_feed(feed_events(entry(1, "checkin", student="S1", session="10", at="16:01")))
    assert tap(gate, CHILD, clock).outcome == "already_checked_in"
    assert tap(gate, FATHER, clock).outcome == "pickup_allowed"
    gate.confirm("1")
    gate.apply_feed(feed_events(entry(2, "checkin", student="S4", session="11", at="16:20")))
    before = gate.state
    gate.close()
    again = make_gate(tmp_path, clock)
    try:
        assert again.state.checked_in == before.checked_in == {"S1": "10", "S4": "11"}
        assert again.state.gone == before.gone == {"S1": "pickup"}
        assert again.state.gates == before.gates == {"S1": "k2", "S4": "k2"}
        assert again.feed_pos == 2
    finally:
        again.close()


# --- decisions on the school's view -------------------------------------------------------------------


def test_a_pickup_here_of_a_child_checked_in_at_another_gate_is_allowed(gate, clock):
    sign_in(gate)
    gate.apply_feed(feed_events(entry(1, "checkin", student="S1", session="10")))
    shown = gate.pickup("S1", "g1")
    assert shown.outcome == "pickup_allowed"
    assert gate.confirm(shown.confirm).outcome == "pickup_done"


def test_no_absent_alert_for_a_child_who_came_in_at_another_gate(gate, clock):
    clock.now = local("16:20")  # past session 10's absent_after (16:10)
    gate.apply_feed(feed_events(entry(1, "checkin", student="S1", session="10")))
    raised = {(s.outcome, s.student) for s in gate.check_alerts()}
    assert ("alert_absent", "S2") in raised
    assert ("alert_absent", "S1") not in raised


def test_offline_a_not_on_site_refusal_says_since_when_the_other_gates_are_unknown(tmp_path, clock):
    gate = make_gate(tmp_path, clock)
    gate.feed = FeedFollower(gate, school="s1", central_key=PUBLIC, clock=clock)  # went offline at 16:30
    try:
        refused = gate.pickup("S1", "g1")
        assert refused.outcome == "not_on_site" and refused.overridable
        assert refused.message.startswith("王子涵未在本门签到；离线中，自 16:30 起不知道其他校门的情况")
        gate.feed._connected = True
        gate.feed._set(CURRENT)
        assert gate.pickup("S1", "g1").message == "王子涵今天未签到，不在校内"
    finally:
        gate.close()


# --- the follower: verification, gaps, catch-up ------------------------------------------------------


class Central:
    """What central answers to ``GET …/feed?after=N`` (the route itself is tested in tests/central)."""

    def __init__(self, entries: list[dict], *, page: int = 2, fail: bool = False) -> None:
        self.entries, self.page, self.fail = entries, page, fail
        self.asked: list[int] = []

    def after(self, pos: int, limit: int = 500) -> protocol.Feed:
        self.asked.append(pos)
        if self.fail:
            raise FeedError("central cannot be reached")
        run = [e for e in self.entries if e["pos"] > pos][: self.page]
        return protocol.parse_message(protocol.Feed, sealed(run, len(self.entries)))

    def close(self) -> None:
        pass


def follower(gate: Kiosk, clock: Clock, central: Central | None) -> FeedFollower:
    found = FeedFollower(gate, school="s1", central_key=PUBLIC, fetcher=central, clock=clock)
    found.connected()  # as the sync client says on connect (the worker thread is not started here)
    gate.feed = found
    return found


SCHOOL_DAY = [entry(1, "checkin", student="S1", session="10"), entry(2, "checkin", student="S2", session="10"),
              entry(3, "pickup", student="S2", guardian="g2"), entry(4, "checkin", student="S4", session="11"),
              entry(5, "checkin", student="S1", kiosk="k1", session="10")]


def test_on_connect_the_gate_catches_up_page_by_page_until_the_head(gate, clock):
    central = Central(SCHOOL_DAY)
    feed = follower(gate, clock, central)
    assert feed.state == OFFLINE
    feed.catch_up()
    assert central.asked == [0, 2, 4]
    assert feed.state == CURRENT and feed.unknown_since is None
    assert gate.feed_pos == 5
    assert gate.counts().on_site == 2 and gate.counts().gone == 1


def test_a_message_after_a_gap_makes_the_gate_catch_up_first(gate, clock):
    central = Central(SCHOOL_DAY)
    feed = follower(gate, clock, central)
    feed.receive(sealed(SCHOOL_DAY[:1], 1))
    assert gate.feed_pos == 1 and central.asked == []
    feed.receive(sealed(SCHOOL_DAY[3:4], 4))  # places 2 and 3 never heard
    assert central.asked == [1, 3]
    assert gate.feed_pos == 5
    assert gate.state.gone == {"S2": "pickup"}


def test_central_out_of_reach_leaves_the_gate_catching_up(gate, clock):
    feed = follower(gate, clock, Central(SCHOOL_DAY, fail=True))
    feed.catch_up()
    assert feed.state == CATCHING_UP
    assert feed.unknown_since == clock.now
    assert gate.sync_state().feed == CATCHING_UP
    feed.receive(sealed(SCHOOL_DAY[:2], 3))  # places 1-2, but central's head is 3: still behind
    assert feed.state == CATCHING_UP and gate.feed_pos == 2
    feed.fetcher.fail = False  # central is back: the message shows the gap to the head, and it is filled
    feed.receive(sealed(SCHOOL_DAY[3:4], 4))
    assert feed.state == CURRENT and gate.feed_pos == 5


def test_a_message_up_to_the_head_makes_the_gate_current_when_central_cannot_be_asked(gate, clock):
    feed = follower(gate, clock, Central(SCHOOL_DAY, fail=True))
    feed.catch_up()
    feed.receive(sealed(SCHOOL_DAY[:2], 2))
    assert feed.state == CURRENT and feed.unknown_since is None


@pytest.mark.parametrize(
    "payload, why",
    [
        (sealed(SCHOOL_DAY[:1], 1, key=Ed25519PrivateKey.from_private_bytes(bytes.fromhex("5a" * 32))),
         "central signature does not verify"),
        (protocol.canonical_json(protocol.feed_message("s1", SCHOOL_DAY[:1], 1)), "no central signature"),
        (b"\xff{not json", "refused a school feed message"),
        (protocol.seal(b'{"v":1,"school":"s1","head":1,"events":[{"pos":0}]}', CENTRAL), "bad Feed"),
        (sealed(SCHOOL_DAY[:1], 1, school="s9"), "for school 's9'"),
    ],
    ids=["forged", "unsigned", "not-json", "malformed", "other-school"],
)
def test_a_forged_or_malformed_feed_message_is_refused_and_logged(gate, clock, caplog, payload, why):
    feed = follower(gate, clock, Central(SCHOOL_DAY))
    with caplog.at_level(logging.WARNING, logger="gateway.feed"):
        feed.receive(payload)
    assert feed.refused == 1
    assert gate.feed_pos == 0 and gate.state.checked_in == {}
    assert why in caplog.text


def test_an_event_kept_past_a_gap_is_not_folded_again_when_the_catch_up_brings_it(gate):
    wrong = entry(3, "pickup_denied", student="S1", reason="code_wrong")
    gate.apply_feed(feed_events(entry(1, "checkin", student="S1", session="10")))
    gate.apply_feed(feed_events(wrong))  # past the gap at 2: kept and folded
    gate.apply_feed(feed_events(entry(2, "checkin", student="S2", session="10"), wrong))  # the catch-up
    assert gate.state.wrong_codes == {"S1": 1}
    assert gate.feed_pos == 3


# --- what the console shows ---------------------------------------------------------------------------


async def test_the_roll_call_lists_children_of_every_gate_with_the_gate_they_came_through(gate, clock):
    from sgtest import pilot_until as until
    from textual.widgets import Static

    from hardware import SimulatedReader
    from kiosk.console import GateConsole

    reader = SimulatedReader(clock=clock)
    app = GateConsole(gate, confirm_arm=0.0, reader=reader, alert_every=3600)
    try:
        async with app.run_test() as pilot:
            reader.present(CHILD)
            await until(pilot, lambda: gate.state.on_site("S1"), "the check-in here")
            gate.apply_feed(feed_events(entry(1, "checkin", kiosk="gate-2", student="S2", session="10")))
            await pilot.press("r")
            text = str(app.screen.query_one(Static).render())
            assert "当前在校学生 2 人" in text
            assert "王子涵  三年级1班  从 k1 进校" in text and "李欣怡  三年级2班  从 gate-2 进校" in text
    finally:
        reader.close()


def test_the_footer_says_the_gate_is_catching_up_with_the_other_gates():
    from i18n import t
    from kiosk.console.panels import footer
    from kiosk.display import SyncState

    def shown(feed: str | None, online: bool = True) -> str:
        sync = SyncState(online=online, queue=0, roster_version=3, roster_age_s=60, roster_stale=False, feed=feed)
        return str(footer(sync, None, lambda key, **kw: t(key, "en", **kw)))

    assert "online · catching up with other gates · queue 0" in shown(CATCHING_UP)
    assert "catching up" not in shown(CURRENT)
    assert "catching up" not in shown(None)
    assert "OFFLINE · queue 0" in shown(OFFLINE, online=False)


def test_after_a_restart_the_other_gates_are_unknown_since_the_feed_last_brought_anything(tmp_path, clock):
    gate = make_gate(tmp_path, clock)
    clock.now = local("16:05")
    gate.apply_feed(feed_events(entry(1, "checkin", student="S4", session="11")))
    gate.close()
    clock.now = local("16:40")
    again = Kiosk(KioskSettings(school="s1", kiosk="k1", data_dir=tmp_path, mqtt_url="mqtt://127.0.0.1:9",
                                secret=KEY.hex()), clock=clock)  # never started: offline
    try:
        assert again.feed.unknown_since == local("16:05")
        assert "自 16:05 起不知道其他校门的情况" in again.pickup("S1", "g1").message
    finally:
        again.store.close()


async def test_offline_the_guard_sees_what_is_unknown_and_overrides_a_not_on_site_with_a_reason(gate, clock):
    from sgtest import pilot_until as until

    from hardware import SimulatedReader
    from kiosk.console import ConfirmPickup, GateConsole

    gate.feed = FeedFollower(gate, school="s1", central_key=PUBLIC, clock=clock)  # offline since 16:30
    sign_in(gate)
    reader = SimulatedReader(clock=clock)
    app = GateConsole(gate, confirm_arm=0.0, reader=reader, alert_every=3600)
    try:
        async with app.run_test() as pilot:
            clock.advance(seconds=5)
            reader.present(FATHER)
            reader.present(CHILD)  # S1 may have come in at another gate: this gate has not heard
            await until(pilot, lambda: app.last_refused is not None, "the refusal")
            assert "离线中，自 16:30 起不知道其他校门的情况" in str(app.main["banner"].render())
            await pilot.press("o")
            await pilot.press(*"孩子在门口", "enter")
            await until(pilot, lambda: isinstance(app.screen, ConfirmPickup), "the pickup decided again")
            await pilot.press("enter")
            await until(pilot, lambda: gate.state.gone.get("S1") == "pickup", "the pickup")
        kinds = [(e["kind"], e.get("note"), e.get("reason")) for e in gate.store.day_events(gate.state.day)]
        assert ("override", "pickup", "孩子在门口") in kinds
    finally:
        reader.close()


def test_a_message_that_follows_on_but_stops_short_of_the_head_makes_the_gate_read_the_rest(gate, clock):
    central = Central(SCHOOL_DAY)
    feed = follower(gate, clock, central)
    feed.receive(sealed(SCHOOL_DAY[:2], 5))  # another worker's batch (3-5) was placed but not heard
    assert central.asked == [2, 4]
    assert gate.feed_pos == 5 and feed.state == CURRENT
