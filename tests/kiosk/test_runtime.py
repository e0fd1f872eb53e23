import io
import threading

from hardware import SimulatedReader
from kiosk.config import KioskSettings
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
    shown: list[dict] = []

    def on_decision(decision: dict) -> None:
        shown.append(decision)
        if len(shown) == 2:
            stop.set()

    reader.present("04A1B2C3")
    reader.present("04A1B2C3")  # the same card again at once: a repeat, ignored
    gate.run(reader, out, stop, on_decision)
    gate.close()
    assert [d["outcome"] for d in shown] == ["unknown_card", "repeat_tap"]
    assert reader.tones == ["attention", "ignored"]
    assert len(out.getvalue().splitlines()) == 2
    assert gate._reader_state() == "ok"
