from datetime import UTC, date, datetime, timedelta

import pytest

from gateway import protocol
from kiosk import engine
from kiosk.roster import Roster

NOW = datetime(2026, 11, 30, 8, 30, tzinfo=UTC)
ROSTER = Roster.from_snapshot(
    protocol.RosterSnapshot.model_validate(
        {
            "v": 1,
            "school": "s1",
            "version": 3,
            "generated_at": "2026-11-30T00:00:00+00:00",
            "students": [
                {"id": "S1", "name": "王子涵", "class": "三年级1班", "cards": ["04A1B2C3"]},
                {"id": "S2", "name": "李欣怡", "class": "三年级2班", "cards": ["04112233445566"]},
                {"id": "S3", "name": "张浩然", "class": "三年级2班", "cards": ["AABBCCDD"], "enrolled": False},
            ],
            "guardians": [
                {"id": "g1", "name": "王父", "cards": ["DEADBEEF"], "links": [{"student": "S1"}]},
            ],
            "staff": [{"id": "st1", "name": "李老师", "cards": ["5A5A5A5A"]}],
        }
    )
)

CASES = {
    # name: (uid, checked_in, last_tap_ago, outcome, tone, event)
    "enrolled student checks in": ("04A1B2C3", set(), None, "checked_in", "allowed", "checkin"),
    "7-byte uid checks in": ("04112233445566", set(), None, "checked_in", "allowed", "checkin"),
    "lower-case uid is the same card": ("04a1b2c3", set(), None, "checked_in", "allowed", "checkin"),
    "already checked in is told so": ("04A1B2C3", {"S1"}, None, "already_checked_in", "attention", None),
    "unknown card is recorded": ("01020304", set(), None, "unknown_card", "attention", "unknown_card"),
    "not enrolled is refused": ("AABBCCDD", set(), None, "not_enrolled", "refused", None),
    "guardian card is shown, not recorded": ("DEADBEEF", set(), None, "guardian_card", "attention", None),
    "staff card is shown, not recorded (duty is the console's)": ("5A5A5A5A", set(), None, "staff_card", "attention", None),
    "repeat within debounce is ignored": ("04A1B2C3", set(), timedelta(seconds=1), "repeat_tap", "ignored", None),
    "repeat after debounce is decided": ("04A1B2C3", {"S1"}, timedelta(seconds=3), "already_checked_in", "attention", None),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_decide(case):
    uid, checked_in, ago, outcome, tone, event = CASES[case]
    state = engine.GateState(day=date(2026, 11, 30), checked_in=set(checked_in))
    if ago is not None:
        state.last_tap[uid.upper()] = NOW - ago
    decision = engine.decide(ROSTER, state, uid, NOW)
    assert (decision.outcome, decision.tone, decision.event) == (outcome, tone, event)


def test_empty_roster_records_every_card_as_unknown():
    state = engine.GateState(day=date(2026, 11, 30))
    decision = engine.decide(Roster.empty("s1"), state, "04A1B2C3", NOW)
    assert decision.event == "unknown_card"


def test_remember_checks_in_and_arms_debounce():
    state = engine.GateState(day=date(2026, 11, 30))
    decision = engine.decide(ROSTER, state, "04A1B2C3", NOW)
    engine.remember(state, decision, NOW)
    assert state.checked_in == {"S1"}
    assert engine.decide(ROSTER, state, "04A1B2C3", NOW + timedelta(seconds=1)).outcome == "repeat_tap"
    assert engine.decide(ROSTER, state, "04A1B2C3", NOW + timedelta(seconds=5)).outcome == "already_checked_in"


def test_engine_imports_neither_sqlite_nor_textual():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(engine))
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not names & {"sqlite3", "textual", "paho"}
