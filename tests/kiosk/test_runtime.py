import io
import threading

from hardware import SimulatedReader
from kiosk.config import KioskSettings
from kiosk.display import Shown
from kiosk.runtime import Kiosk


class RecordingReader(SimulatedReader):
    def __init__(self) -> None:
        super().__init__()
        self.tones: list[str] = []

    def signal(self, tone: str) -> None:
        super().signal(tone)
        self.tones.append(tone)


def test_each_decision_is_printed_and_signalled_on_the_reader(tmp_path):
    gate = Kiosk(KioskSettings(school="s1", kiosk="k1", data_dir=tmp_path, mqtt_url=None), sync=False)
    reader = RecordingReader()
    out = io.StringIO()
    stop = threading.Event()
    shown: list[Shown] = []

    def on_decision(decision: Shown) -> None:
        shown.append(decision)
        if len(shown) == 2:
            stop.set()

    reader.present("04A1B2C3")
    reader.present("04A1B2C3")  # the same card again at once: a repeat, ignored
    gate.run(reader, out, stop, on_decision)
    gate.close()
    assert [d.outcome for d in shown] == ["unknown_card", "repeat_tap"]
    assert reader.tones == ["attention", "ignored"]
    assert len(out.getvalue().splitlines()) == 2
    assert gate._reader_state() == "ok"


def test_a_tap_that_cannot_be_recorded_is_refused_and_the_gate_goes_on(tmp_path, monkeypatch):
    gate = Kiosk(KioskSettings(school="s1", kiosk="k1", data_dir=tmp_path, mqtt_url=None), sync=False)
    calls = {"n": 0}
    real = gate.store.record

    def failing_once(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("disk I/O error")
        return real(*args, **kwargs)

    monkeypatch.setattr(gate.store, "record", failing_once)
    reader = RecordingReader()
    stop = threading.Event()
    shown: list[Shown] = []

    def on_decision(decision: Shown) -> None:
        shown.append(decision)
        if len(shown) == 2:
            stop.set()

    reader.present("04A1B2C3")
    reader.present("0A0B0C0D")
    gate.run(reader, io.StringIO(), stop, on_decision)
    assert [d.outcome for d in shown] == ["kiosk_error", "unknown_card"]
    assert reader.tones == ["refused", "attention"]
    assert gate.store.last_seq == 1
    gate.close()


def test_the_no_ui_loop_prints_alerts_when_they_fall_due(tmp_path):
    from gateway import protocol
    from gateworld import Clock, local, snapshot

    clock = Clock(local("17:40"))
    gate = Kiosk(KioskSettings(school="s1", kiosk="k1", data_dir=tmp_path, mqtt_url=None), sync=False, clock=clock)
    gate.store.apply_snapshot(protocol.RosterSnapshot.model_validate(snapshot()))
    out = io.StringIO()
    stop = threading.Event()
    reader = RecordingReader()
    threading.Timer(1.0, stop.set).start()
    gate.run(reader, out, stop, alerts_every=0.2)
    gate.close()
    import json

    shown = [json.loads(line) for line in out.getvalue().splitlines()]
    assert sorted(d["outcome"] for d in shown) == ["alert_absent"] * 3  # S1, S2, S4 never checked in; once each


def test_wrong_codes_typed_offline_are_recorded_and_still_count_after_a_restart(tmp_path):
    from gateway import protocol
    from gateworld import CODE, KEY, Clock, snapshot

    clock = Clock()
    settings = KioskSettings(school="s1", kiosk="k1", data_dir=tmp_path, mqtt_url=None, secret=KEY.hex())
    gate = Kiosk(settings, sync=False, clock=clock)
    gate.store.apply_snapshot(protocol.RosterSnapshot.model_validate(snapshot()))
    shown = [gate.pickup_code("S1", "000000").outcome for _ in range(3)]
    gate.close()
    assert shown == ["code_wrong"] * 3
    gate = Kiosk(settings, sync=False, clock=clock)  # the kiosk restarts: the count comes back from its log
    shown = [gate.pickup_code("S1", "000000").outcome for _ in range(2)] + [gate.pickup_code("S1", CODE).outcome]
    denied = [e for e in gate.store.day_events(gate.state.day) if e["kind"] == "pickup_denied"]
    gate.close()
    assert shown == ["code_wrong", "code_wrong", "code_locked"]
    assert [e["reason"] for e in denied] == ["code_wrong"] * 5 + ["code_locked"]


def test_the_status_names_the_guard_signed_in_and_the_reader(tmp_path):
    from gateway import protocol
    from gateworld import GUARD_CARD, Clock, local, snapshot
    from hardware import CardTap

    clock = Clock(local("16:00"))
    # sync is built (not started: no broker is needed to see what the status would say)
    gate = Kiosk(KioskSettings(school="s1", kiosk="k1", data_dir=tmp_path, mqtt_url="mqtt://127.0.0.1:1"), clock=clock)
    gate.store.apply_snapshot(protocol.RosterSnapshot.model_validate(snapshot()))
    assert (gate.sync._status(online=True).guard, gate.sync._status(online=True).reader) == (None, None)
    gate.attach_reader(RecordingReader())
    assert gate.handle(CardTap(GUARD_CARD, "sim", "sim", clock())).outcome == "guard_signed_in"
    status = gate.sync._status(online=True)
    assert (status.guard, status.reader) == ("st2", "ok")
    gate.sign_out()
    assert gate.sync._status(online=True).guard is None
    gate.store.close()


def test_each_decision_line_carries_its_events_id(tmp_path):
    import json

    gate = Kiosk(KioskSettings(school="s1", kiosk="k1", data_dir=tmp_path, mqtt_url=None), sync=False)
    reader = RecordingReader()
    out = io.StringIO()
    stop = threading.Event()
    shown: list = []

    def on_decision(decision) -> None:
        shown.append(decision)
        if len(shown) == 3:
            stop.set()

    for uid in ("04A1B2C3", "04A1B2C3", "0A0B0C0D"):  # the second is a repeat: nothing is recorded
        reader.present(uid)
    gate.run(reader, out, stop, on_decision)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    recorded = gate.store.day_events(gate.state.day)
    assert [line["event_id"] for line in lines] == [recorded[0]["id"], None, recorded[1]["id"]]
    assert [line["seq"] for line in lines] == [1, None, 2]
    gate.close()
