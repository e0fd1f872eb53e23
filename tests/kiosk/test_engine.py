"""The decision engine as tables: each case is named for the rule it checks (tests/gateworld.py has the school)."""

from dataclasses import replace
from datetime import date, timedelta

import pytest

from gateworld import CODE, DAY, GUARD_CARD, KEY, KIOSK, NOW, local, roster, snapshot
from gateway import protocol
from kiosk import engine
from kiosk.roster import Roster

ROSTER = roster()


def state(*, checked_in=None, gone=None, on_duty=(), pending=None, last_tap=None, used_codes=(), day=DAY, guards=None):
    s = engine.GateState(day=day, kiosk=KIOSK, checked_in=dict(checked_in or {}), gone=dict(gone or {}), on_duty=set(on_duty),
                         used_codes=set(used_codes), guards=dict(guards or {}))
    for role, who, ago in [pending] if isinstance(pending, tuple) else pending or []:
        s.pending.append(engine.Pending(role, who, NOW - timedelta(seconds=ago)))
    for uid, ago in (last_tap or {}).items():
        s.last_tap[uid] = NOW - timedelta(seconds=ago)
    return s


# name: (uid, when, state, outcome, tone, event, extra expectations)
TAPS = {
    # check-in
    "checkin: enrolled child inside the session window is checked in to that session":
        ("04A1B2C3", NOW, state(), "checked_in", "allowed", "checkin", {"session": "10"}),
    "checkin: 7-byte uid checks in": ("04112233445566", NOW, state(), "checked_in", "allowed", "checkin", {}),
    "checkin: lower-case uid is the same card": ("04a1b2c3", NOW, state(), "checked_in", "allowed", "checkin", {}),
    "checkin: window opens 30 min before the start": ("04A1B2C3", local("15:30"), state(), "checked_in", "allowed", "checkin", {}),
    "checkin: before the window is refused as too early, overridable":
        ("04A1B2C3", local("15:29:59"), state(), "too_early", "refused", None, {"overridable": True}),
    "checkin: at the end is still inside the window": ("04A1B2C3", local("17:20"), state(), "checked_in", "allowed", "checkin", {}),
    "checkin: after the end is refused": ("04A1B2C3", local("17:21"), state(), "session_over", "refused", None, {"overridable": True}),
    "checkin: child in another group gets their own session": ("0000000A", NOW, state(), "checked_in", "allowed", "checkin", {"session": "11"}),
    "checkin: not enrolled is refused with reason, overridable":
        ("AABBCCDD", NOW, state(), "not_enrolled", "refused", None, {"reason": "not_enrolled", "overridable": True}),
    "checkin: no session today for the child's groups is refused": ("0000000B", NOW, state(), "no_session_today", "refused", None, {}),
    "checkin: a day without sessions (weekend, holiday) is refused":
        ("04A1B2C3", local("16:30", date(2026, 12, 5)), state(day=date(2026, 12, 5)), "no_session_today", "refused", None, {}),
    "checkin: already checked in is told so": ("04A1B2C3", NOW, state(checked_in={"S1": "10"}), "already_checked_in", "attention", None, {}),
    "checkin: repeat within the debounce is ignored": ("04A1B2C3", NOW, state(last_tap={"04A1B2C3": 1}), "repeat_tap", "ignored", None, {}),
    "checkin: repeat after the debounce is decided":
        ("04A1B2C3", NOW, state(checked_in={"S1": "10"}, last_tap={"04A1B2C3": 3}), "already_checked_in", "attention", None, {}),
    "checkin: a child who left today is told so": ("04A1B2C3", NOW, state(checked_in={"S1": "10"}, gone={"S1": "pickup"}), "already_left", "attention", None, {}),
    # unknown and staff
    "unknown card is recorded": ("01020304", NOW, state(), "unknown_card", "attention", "unknown_card", {}),
    "staff: a staff card goes on duty": ("5A5A5A5A", NOW, state(), "staff_on", "allowed", "staff_on", {"staff": "st1", "note": None}),
    "staff: the same card again goes off duty": ("5A5A5A5A", NOW, state(on_duty={"st1"}), "staff_off", "allowed", "staff_off", {}),
    "staff: a teacher's card does not sign in at the gate, even with nobody signed in":
        ("5A5A5A5A", NOW, state(guards={}), "staff_on", "allowed", "staff_on", {"note": None}),
    # guards at the console
    "guard: a guard's card signs them in at this gate":
        (GUARD_CARD, NOW, state(), "guard_signed_in", "allowed", "staff_on", {"staff": "st2", "note": "guard"}),
    "guard: the same card again signs them out":
        (GUARD_CARD, NOW, state(on_duty={"st2"}, guards={KIOSK: "st2"}), "guard_signed_out", "allowed", "staff_off",
         {"staff": "st2", "note": "guard", "card": GUARD_CARD}),
    "guard: signed in at another gate, their card signs them in here":
        (GUARD_CARD, NOW, state(on_duty={"st2"}, guards={"k2": "st2"}), "guard_signed_in", "allowed", "staff_on", {"staff": "st2"}),
    "guard: another guard signed in here is replaced":
        (GUARD_CARD, NOW, state(guards={KIOSK: "st9"}), "guard_signed_in", "allowed", "staff_on", {"staff": "st2"}),
    # pickup pairing
    "pickup: a guardian alone waits for the child": ("DEADBEEF", NOW, state(checked_in={"S1": "10"}), "guardian_waiting", "attention", None, {}),
    "pickup: guardian then child within 30 s asks the guard to confirm":
        ("04A1B2C3", NOW, state(checked_in={"S1": "10"}, pending=("guardian", "g1", 29)), "pickup_allowed", "allowed", "pickup",
         {"confirm": True, "guardian": "g1", "student": "S1", "session": "10"}),
    "pickup: child then guardian within 30 s asks the guard to confirm":
        ("DEADBEEF", NOW, state(checked_in={"S1": "10"}, pending=("student", "S1", 10)), "pickup_allowed", "allowed", "pickup", {"confirm": True}),
    "pickup: a guardian tap older than 30 s pairs with nothing":
        ("04A1B2C3", NOW, state(checked_in={"S1": "10"}, pending=("guardian", "g1", 31)), "already_checked_in", "attention", None, {}),
    "pickup: a child tap older than 30 s pairs with nothing":
        ("DEADBEEF", NOW, state(checked_in={"S1": "10"}, pending=("student", "S1", 31)), "guardian_waiting", "attention", None, {}),
    "pickup: a barred guardian is refused loudly with pickup_denied":
        ("04A1B2C3", NOW, state(checked_in={"S1": "10"}, pending=("guardian", "g5", 5)), "pickup_barred", "refused", "pickup_denied",
         {"alarm": True, "reason": "barred"}),
    "pickup: a barred guardian is refused whatever else holds (child not on site)":
        ("04A1B2C3", NOW, state(pending=("guardian", "g5", 5)), "pickup_barred", "refused", "pickup_denied", {"alarm": True}),
    "pickup: a guardian not linked to the child is refused":
        ("04A1B2C3", NOW, state(checked_in={"S1": "10"}, pending=("guardian", "g3", 5)), "pickup_not_linked", "refused", "pickup_denied",
         {"reason": "not_linked", "alarm": False}),
    "pickup: a link without may_pick_up is refused":
        ("0000000A", NOW, state(checked_in={"S4": "11"}, pending=("guardian", "g3", 5)), "pickup_not_allowed", "refused", "pickup_denied", {}),
    "pickup: a link not valid on this date is refused":
        ("55667788", NOW, state(checked_in={"S5": None}, pending=("student", "S5", 5)), "pickup_link_expired", "refused", "pickup_denied",
         {"reason": "link_not_valid"}),
    "pickup: a child not on site is refused with reason, overridable":
        ("04A1B2C3", NOW, state(pending=("guardian", "g1", 5)), "not_on_site", "refused", None, {"overridable": True}),
    "pickup: in a queue of guardians the child pairs with their own, not the latest":
        ("04A1B2C3", NOW, state(checked_in={"S1": "10"}, pending=[("guardian", "g1", 8), ("guardian", "g3", 4)]),
         "pickup_allowed", "allowed", "pickup", {"guardian": "g1"}),
    "pickup: a guardian pairs with their own child among several waiting":
        ("DEADBEEF", NOW, state(checked_in={"S1": "10", "S4": "11"}, pending=[("student", "S1", 8), ("student", "S4", 4)]),
         "pickup_allowed", "allowed", "pickup", {"student": "S1"}),
    "pickup: a guardian barred from every linked child tapping alone raises the alarm":
        ("99AABBCC", NOW, state(checked_in={"S1": "10"}), "guardian_barred", "refused", "alert",
         {"alarm": True, "reason": "barred_guardian"}),
    "pickup: a child who already left is told so":
        ("DEADBEEF", NOW, state(checked_in={"S1": "10"}, gone={"S1": "pickup"}, pending=("student", "S1", 5)), "already_left", "attention", None, {}),
    "pickup: a child not linked and not on site after a guardian's tap checks in":
        ("0000000A", NOW, state(pending=("guardian", "g1", 5)), "checked_in", "allowed", "checkin", {}),
    # leaving alone
    "self_dismiss: may_leave_alone at the end leaves alone":
        ("04112233445566", local("17:20"), state(checked_in={"S2": "10"}), "self_dismissed", "allowed", "self_dismiss", {"session": "10"}),
    "self_dismiss: may_leave_alone before the end waits for a guardian":
        ("04112233445566", local("17:19"), state(checked_in={"S2": "10"}), "already_checked_in", "attention", None, {}),
    "self_dismiss: without may_leave_alone after the end waits for a guardian":
        ("04A1B2C3", local("17:30"), state(checked_in={"S1": "10"}), "already_checked_in", "attention", None, {}),
}


@pytest.mark.parametrize("case", TAPS, ids=list(TAPS))
def test_tap(case):
    uid, when, gate, outcome, tone, event, extra = TAPS[case]
    for pending in gate.pending:  # pair windows are relative to NOW; keep them relative to the tap's time
        pending.at += when - NOW
    decision = engine.decide(ROSTER, gate, uid, when)
    assert (decision.outcome, decision.tone, decision.event) == (outcome, tone, event)
    for field, value in extra.items():
        assert getattr(decision, field) == value, field


def test_empty_roster_records_every_card_as_unknown():
    decision = engine.decide(Roster.empty("s1"), engine.GateState(day=DAY), "04A1B2C3", NOW)
    assert decision.event == "unknown_card"


def test_pair_is_used_up_and_remembered_taps_debounce():
    gate = state(checked_in={"S1": "10"})
    first = engine.decide(ROSTER, gate, "DEADBEEF", NOW)
    engine.remember(gate, first, NOW)
    assert [(p.role, p.id) for p in gate.pending] == [("guardian", "g1")]
    second = engine.decide(ROSTER, gate, "04A1B2C3", NOW + timedelta(seconds=3))
    engine.remember(gate, second, NOW + timedelta(seconds=3))
    assert second.outcome == "pickup_allowed" and gate.pending == []


# one-time codes: name -> (code typed, state, outcome, event)
CODES = {
    "code: the right code for this child today asks the guard to confirm": (CODE, state(checked_in={"S1": "10"}), "pickup_allowed", "pickup"),
    "code: typed with spaces is the same code": ("123 456", state(checked_in={"S1": "10"}), "pickup_allowed", "pickup"),
    "code: used once is refused the second time": (CODE, state(checked_in={"S1": "10"}, used_codes={"7"}), "code_used", None),
    "code: a wrong code is refused and recorded": ("654321", state(checked_in={"S1": "10"}), "code_wrong", "pickup_denied"),
    "code: another day's code is refused": (CODE, state(checked_in={"S1": "10"}, day=date(2026, 12, 1)), "code_wrong", "pickup_denied"),
    "code: the right code for a child not on site is refused": (CODE, state(), "not_on_site", None),
}


@pytest.mark.parametrize("case", CODES, ids=list(CODES))
def test_code(case):
    code, gate, outcome, event = CODES[case]
    decision = engine.pickup_by_code(ROSTER, gate, "S1", code, NOW, key=KEY, kiosk=KIOSK)
    assert (decision.outcome, decision.event) == (outcome, event)
    if event == "pickup":
        assert decision.confirm and decision.note == "code:7" and decision.person == "王舅舅"


def _with_issuer(issuer, extra_guardian=None):
    snap = snapshot()
    snap["codes"][0]["issuer"] = issuer
    if extra_guardian:
        snap["guardians"].append(extra_guardian)
    return Roster.from_snapshot(protocol.RosterSnapshot.model_validate(snap))


EXPIRED = {"id": "g6", "name": "王姑姑", "links": [{"student": "S1", "valid_until": "2026-11-29"}]}
# the issuer of code 7 (and who else the roster holds) -> (outcome, event, reason, alarm)
ISSUERS = {
    "issuer: an authorised guardian's code is good": ("g1", None, "pickup_allowed", "pickup", "code", False),
    "issuer: a guardian barred since is refused loudly": ("g5", None, "code_issuer_refused", "pickup_denied", "code_issuer_barred", True),
    "issuer: a guardian without may_pick_up is refused": ("g3", {"id": "g3", "name": "赵外婆", "links": [{"student": "S1", "may_pick_up": False}]},
                                                          "code_issuer_refused", "pickup_denied", "code_issuer_not_allowed", False),
    "issuer: a guardian no longer linked is refused": ("g2", None, "code_issuer_refused", "pickup_denied", "code_issuer_not_allowed", False),
    "issuer: a guardian whose link ended is refused": ("g6", EXPIRED, "code_issuer_refused", "pickup_denied", "code_issuer_not_allowed", False),
    "issuer: a guardian gone from the roster is refused": ("g99", None, "code_issuer_refused", "pickup_denied", "code_issuer_not_allowed", False),
}


@pytest.mark.parametrize("case", ISSUERS, ids=list(ISSUERS))
def test_a_code_stands_on_its_issuers_link(case):
    issuer, extra, outcome, event, reason, alarm = ISSUERS[case]
    if extra and extra["id"] == "g3":
        snap = snapshot()
        snap["codes"][0]["issuer"] = "g3"
        snap["guardians"] = [g for g in snap["guardians"] if g["id"] != "g3"] + [extra]
        roster_ = Roster.from_snapshot(protocol.RosterSnapshot.model_validate(snap))
    else:
        roster_ = _with_issuer(issuer, extra)
    decision = engine.pickup_by_code(roster_, state(checked_in={"S1": "10"}), "S1", CODE, NOW, key=KEY, kiosk=KIOSK)
    assert (decision.outcome, decision.event, decision.reason, decision.alarm) == (outcome, event, reason, alarm)


def test_a_custody_order_arriving_before_the_guards_enter_voids_the_code():
    gate = state(checked_in={"S1": "10"})
    asked = engine.pickup_by_code(_with_issuer("g1"), gate, "S1", CODE, NOW, key=KEY, kiosk=KIOSK)
    assert asked.outcome == "pickup_allowed"
    snap = snapshot()
    snap["codes"][0]["issuer"] = "g1"
    snap["guardians"][0]["links"] = [{"student": "S1", "may_pick_up": False, "barred": True}]
    barred_now = Roster.from_snapshot(protocol.RosterSnapshot.model_validate(snap))
    again = engine.recheck(barred_now, gate, asked, NOW)
    assert (again.outcome, again.event, again.alarm) == ("code_issuer_refused", "pickup_denied", True)


def test_wrong_codes_are_recorded_and_limited_across_a_restart():
    gate = state(checked_in={"S1": "10"})
    recorded = []
    for _ in range(5):
        decision = engine.pickup_by_code(ROSTER, gate, "S1", "000000", NOW, key=KEY, kiosk=KIOSK)
        assert (decision.outcome, decision.event, decision.reason) == ("code_wrong", "pickup_denied", "code_wrong")
        event = {"kind": decision.event, "at": "x", **decision.event_fields()}
        engine.fold(gate, event)
        recorded.append(event)
    # The sixth try is not checked, even with the right code, and is recorded too.
    locked = engine.pickup_by_code(ROSTER, gate, "S1", CODE, NOW, key=KEY, kiosk=KIOSK)
    assert (locked.outcome, locked.event, locked.reason) == ("code_locked", "pickup_denied", "code_locked")
    # A restart rebuilds the day from its recorded events: still locked.
    restarted = state(checked_in={"S1": "10"})
    for event in recorded:
        engine.fold(restarted, event)
    assert engine.pickup_by_code(ROSTER, restarted, "S1", CODE, NOW, key=KEY, kiosk=KIOSK).outcome == "code_locked"
    # Another child's codes are not touched.
    assert engine.pickup_by_code(ROSTER, restarted, "S4", "000000", NOW, key=KEY, kiosk=KIOSK).outcome == "code_wrong"


def test_code_of_another_kiosk_does_not_match():
    decision = engine.pickup_by_code(ROSTER, state(checked_in={"S1": "10"}), "S1", CODE, NOW, key=KEY, kiosk="k2")
    assert decision.outcome == "code_wrong"


def test_no_card_pickup_from_the_authorised_list_follows_the_same_rules():
    gate = state(checked_in={"S1": "10"})
    assert [g.id for g, _ in engine.authorised(ROSTER, "S1", DAY)] == ["g1"]
    assert [g.id for g in engine.barred(ROSTER, "S1")] == ["g5"]
    assert engine.pickup(ROSTER, gate, "S1", "g1", NOW).outcome == "pickup_allowed"
    assert engine.pickup(ROSTER, gate, "S1", "g5", NOW).outcome == "pickup_barred"


def test_guard_refusing_an_allowed_pickup_records_pickup_denied():
    allowed = engine.pickup(ROSTER, state(checked_in={"S1": "10"}), "S1", "g1", NOW)
    refused = engine.guard_refused(allowed)
    assert (refused.event, refused.reason, refused.student, refused.guardian) == ("pickup_denied", "guard_refused", "S1", "g1")


def test_override_admits_with_a_typed_reason_and_needs_one():
    decision = engine.override(ROSTER, state(), "S3", "  家长电话确认  ", NOW)
    assert (decision.event, decision.note, decision.reason) == ("override", "checkin", "家长电话确认")
    with pytest.raises(ValueError, match="override_reason_required"):
        engine.override(ROSTER, state(), "S3", "   ", NOW)


def test_fold_rebuilds_the_day():
    gate = state()
    events = [
        {"kind": "checkin", "student": "S1", "session": "10", "at": "x"},
        {"kind": "override", "student": "S3", "note": "checkin", "reason": "r", "at": "x"},
        {"kind": "pickup", "student": "S1", "guardian": "g1", "note": "code:7", "at": "x"},
        {"kind": "staff_on", "staff": "st1", "at": "x"},
        {"kind": "alert", "reason": "absent", "student": "S2", "session": "10", "at": "x"},
    ]
    for event in events:
        engine.fold(gate, event)
    assert gate.checked_in == {"S1": "10", "S3": None} and gate.gone == {"S1": "pickup"}
    assert gate.used_codes == {"7"} and gate.on_duty == {"st1"}
    assert ("absent", "S2", "10", "") in gate.alerted


def test_a_guard_is_signed_in_per_gate_and_only_their_own_sign_out_ends_it():
    gate = state()
    assert gate.guard is None and not engine.may_confirm(gate)
    engine.fold(gate, {"kind": "staff_on", "staff": "st1", "kiosk": KIOSK, "at": "x"})  # a teacher on duty: no guard
    assert gate.guard is None
    engine.fold(gate, {"kind": "staff_on", "staff": "st2", "note": "guard", "kiosk": "k2", "at": "x"})  # at gate 2
    assert gate.guard is None and gate.guards == {"k2": "st2"}
    engine.fold(gate, {"kind": "staff_on", "staff": "st2", "note": "guard", "kiosk": KIOSK, "at": "x"})
    assert gate.guard == "st2" and engine.may_confirm(gate) and gate.on_duty == {"st1", "st2"}
    engine.fold(gate, {"kind": "staff_off", "staff": "st2", "note": "guard", "kiosk": "k2", "at": "x"})  # out at gate 2
    assert gate.guard == "st2" and gate.guards == {KIOSK: "st2"}
    engine.fold(gate, {"kind": "staff_off", "staff": "st9", "note": "guard", "kiosk": KIOSK, "at": "x"})  # not theirs
    assert gate.guard == "st2"
    out = engine.sign_out(gate)
    assert (out.outcome, out.event, out.staff, out.note) == ("guard_signed_out", "staff_off", "st2", "guard")
    engine.fold(gate, {"kind": "staff_off", "staff": "st2", "note": "guard", "kiosk": KIOSK, "at": "x"})
    assert gate.guard is None and not engine.may_confirm(gate)
    with pytest.raises(ValueError, match="guard_none_signed_in"):
        engine.sign_out(gate)


def test_visitors_sign_in_and_out():
    gate = state()
    decision = engine.visitor_in("刘师傅", "123x", "送货", "总务处", visit="v1")
    engine.fold(gate, {"kind": "visitor_in", "at": "2026-11-30T08:00:00Z", **decision.event_fields()})
    assert gate.visitors["v1"]["id4"] == "123X" and gate.visitors["v1"]["purpose"] == "送货"
    out = engine.visitor_out(gate, "v1")
    engine.fold(gate, {"kind": "visitor_out", "at": "x", **out.event_fields()})
    assert gate.visitors == {}
    with pytest.raises(ValueError, match="visitor_not_on_site"):
        engine.visitor_out(gate, "v1")


VISITOR_ERRORS = {
    "visitor: a name is required": (("", "1234", "送货", "总务处"), "visitor_name_required"),
    "visitor: the ID's last 4 are digits (X last)": (("刘师傅", "12a4", "送货", "总务处"), "visitor_id4_invalid"),
    "visitor: purpose and person visited are required": (("刘师傅", "1234", "", "总务处"), "visitor_purpose_required"),
}


@pytest.mark.parametrize("case", VISITOR_ERRORS, ids=list(VISITOR_ERRORS))
def test_visitor_input_errors(case):
    args, error = VISITOR_ERRORS[case]
    with pytest.raises(ValueError, match=error):
        engine.visitor_in(*args, visit="v1")


def kinds(alerts):
    return sorted((a.kind, a.student or "") for a in alerts)


ALERTS = {
    # name: (now, state, options, expected (kind, student))
    "alert: absent 10 min after the start for every enrolled child not checked in":
        (local("16:10"), state(), {}, [("absent", "S1"), ("absent", "S2")]),
    "alert: no absent alert before 10 min after the start": (local("16:09:59"), state(), {}, []),
    "alert: a checked-in child is not absent": (local("16:11"), state(checked_in={"S1": "10"}), {}, [("absent", "S2")]),
    "alert: late pickup 15 min after the end for a child still on site":
        (local("17:35"), state(checked_in={"S1": "10", "S2": "10", "S4": "11"}, gone={"S2": "pickup", "S4": "pickup"}), {}, [("late_pickup", "S1")]),
    "alert: no late pickup before 15 min after the end": (local("17:34"), state(checked_in={"S1": "10", "S2": "10", "S4": "11"}, gone={"S4": "pickup"}), {}, []),
    "alert: offline for more than 2 min": (NOW, state(checked_in={"S1": "10", "S2": "10"}), {"offline_since": NOW - timedelta(minutes=2)}, [("offline", "")]),
    "alert: offline for less than 2 min is quiet": (NOW, state(checked_in={"S1": "10", "S2": "10"}), {"offline_since": NOW - timedelta(seconds=119)}, []),
    "alert: oldest unacked event older than 5 min": (NOW, state(checked_in={"S1": "10", "S2": "10"}), {"oldest_unacked": NOW - timedelta(minutes=5)}, [("unacked", "")]),
}


@pytest.mark.parametrize("case", ALERTS, ids=list(ALERTS))
def test_alerts(case):
    now, gate, options, expected = ALERTS[case]
    assert kinds(engine.due_alerts(ROSTER, gate, now, **options)) == expected


def test_alert_roster_older_than_a_day_warns_once_a_day():
    old = roster(generated_at="2026-11-29T08:00:00+00:00")
    gate = state(checked_in={"S1": "10", "S2": "10"})
    alerts = engine.due_alerts(old, gate, NOW)
    assert kinds(alerts) == [("roster_stale", "")] and engine.roster_stale(old, NOW)
    decision = alerts[0].decision()
    engine.fold(gate, {"kind": "alert", "at": "x", **decision.event_fields()})
    assert engine.due_alerts(old, gate, NOW) == []
    assert not engine.roster_stale(ROSTER, NOW)


def test_each_alert_is_raised_once():
    gate = state()
    for alert in engine.due_alerts(ROSTER, gate, local("16:11")):
        engine.fold(gate, {"kind": "alert", "at": "x", **alert.decision().event_fields()})
    assert engine.due_alerts(ROSTER, gate, local("16:12")) == []


def test_counts_and_roll_call():
    gate = state(checked_in={"S1": "10", "S4": "11", "S3": None}, gone={"S4": "pickup"})
    assert engine.counts(ROSTER, gate, local("16:45")) == engine.Counts(expected=3, on_site=2, gone=1, absent=1)
    calls = engine.roll_call(ROSTER, gate)
    assert [(s.id if s else None, kids) for s, kids in calls] == [("10", ["S1"]), (None, ["S3"])]


def test_a_session_that_runs_past_midnight_still_takes_check_ins_after_it():
    late = roster()
    night = protocol.RosterSession(id="12", group="1", date=DAY.isoformat(), start="2026-11-30T15:50:00Z",
                                   end="2026-11-30T17:10:00Z")  # 23:50–01:10 local
    late = replace(late, sessions={**late.sessions, "12": night})
    after_midnight = local("00:20", date(2026, 12, 1))
    decision = engine.decide(late, state(day=date(2026, 12, 1)), "04A1B2C3", after_midnight)
    assert (decision.outcome, decision.session) == ("checked_in", "12")


def test_rules_are_settings():
    late = replace(engine.RULES, before_start=timedelta(minutes=5))
    assert engine.decide(ROSTER, state(), "04A1B2C3", local("15:50"), late).outcome == "too_early"
