"""``Shown.as_json()`` is the line ``kiosk run --no-ui`` prints: its keys and their order are a contract."""

from __future__ import annotations

import json

from kiosk.display import Shown


def test_the_no_ui_line_keeps_its_keys_in_their_order():
    shown = Shown(at="2026-11-30T16:40:00.000+08:00", outcome="checked_in", tone="allowed", message="王子涵（三年级1班）已签到",
                  reader="sim", card="04A1B2C3", student="S1", session="10", name="王子涵", class_name="三年级1班",
                  event="checkin", seq=1, event_id="0192e3f0-7c3a-7b11-8000-0123456789ab")
    assert json.dumps(shown.as_json(), ensure_ascii=False) == (
        '{"at": "2026-11-30T16:40:00.000+08:00", "reader": "sim", "card": "04A1B2C3", "outcome": "checked_in", '
        '"tone": "allowed", "student": "S1", "guardian": null, "staff": null, "session": "10", "name": "王子涵", '
        '"class": "三年级1班", "guardian_name": null, "relation": null, "phone": null, "person": null, "reason": null, '
        '"note": null, "event": "checkin", "seq": 1, "confirm": null, "alarm": false, "overridable": false, '
        '"message": "王子涵（三年级1班）已签到", "event_id": "0192e3f0-7c3a-7b11-8000-0123456789ab"}'
    )  # event_id (issue 13) comes last: no older key moved
