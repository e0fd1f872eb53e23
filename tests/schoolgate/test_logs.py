"""Log lines through the commands' real logging setup: text or JSON, never a full card UID, a phone
number, a token or a password."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys

import pytest

from gateway.mqtt import free_port
from schoolgate import logs

from .test_cli import clean_env

UID = "04A1B2C3D4E5F6"
PHONE = "13812345678"
TOKEN = "tok-Zq81-secret-value"
PASSWORD = "correct horse"  # noqa: S105 - what must not come out


@pytest.fixture
def logged():
    """Set up logging as a command does, into a buffer; the root logger is put back afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)

    def run(fmt: str) -> list[str]:
        buffer = io.StringIO()
        logs.setup(fmt=fmt, stream=buffer)
        log = logging.getLogger("central.kiosks.ingest")
        log.info("stored event gate-1 seq 7 checkin card %s student A1", UID)
        log.info("guardian phone %s notified", PHONE)
        log.warning("login with token=%s refused; Authorization: Bearer %s", TOKEN, TOKEN)
        log.info("connecting to mqtt://central:%s@127.0.0.1:1884 as %r", "s3cr3t-pw", {"password": PASSWORD, "card": "0A0B0C0D"})
        log.info("kiosk event", extra={"card": UID, "phone": PHONE, "headers": {"authorization": f"Bearer {TOKEN}"}, "seq": 7})
        try:
            raise ValueError(f"reader returned {UID} for {PHONE}")
        except ValueError:
            log.exception("tap failed")
        return buffer.getvalue().splitlines()

    yield run
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def assert_clean(text: str) -> None:
    for secret in (UID, "A1B2C3D4E5F6", PHONE, "12345678", TOKEN, "s3cr3t-pw", PASSWORD, "0A0B0C0D"):
        assert secret not in text, f"{secret!r} in {text!r}"


def test_standard_error_is_the_one_in_place_when_a_line_is_written(monkeypatch):
    """A command run in-process (a test's CliRunner) swaps sys.stderr and closes its own afterwards, while
    threads it started (the ingest) go on logging: their lines go to the standard error of the moment."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    first, second = io.StringIO(), io.StringIO()
    try:
        monkeypatch.setattr(sys, "stderr", first)
        logs.setup()
        logging.getLogger("central.kiosks.ingest").info("stored event gate-1 seq 1")
        first.close()
        monkeypatch.setattr(sys, "stderr", second)
        logging.getLogger("central.kiosks.ingest").info("stored event gate-1 seq 2")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    assert second.getvalue().endswith("INFO central.kiosks.ingest: stored event gate-1 seq 2\n")


def test_text_lines_are_masked(logged):
    lines = logged("text")
    assert_clean("\n".join(lines))
    assert lines[0].endswith("INFO central.kiosks.ingest: stored event gate-1 seq 7 checkin card ****E5F6 student A1")
    assert lines[1].endswith("guardian phone 138****5678 notified")
    assert "token=*** refused; Authorization: Bearer ***" in lines[2]
    assert "mqtt://central:***@127.0.0.1:1884" in lines[3]
    assert "'password': '***'" in lines[3] and "'card': '****0C0D'" in lines[3]
    # The traceback follows its line (text is for people); it is masked too.
    assert any("ValueError: reader returned ****E5F6 for 138****5678" in line for line in lines)


def test_json_lines_are_one_object_each_and_masked(logged):
    lines = logged("json")
    records = [json.loads(line) for line in lines]  # every line is one JSON object, the traceback inside
    assert len(records) == 6
    assert_clean("\n".join(lines))
    first = records[0]
    assert set(first) == {"time", "level", "logger", "message"}
    assert (first["level"], first["logger"]) == ("INFO", "central.kiosks.ingest")
    assert first["message"] == "stored event gate-1 seq 7 checkin card ****E5F6 student A1"
    assert records[1]["message"] == "guardian phone 138****5678 notified"
    assert records[2]["message"] == "login with token=*** refused; Authorization: Bearer ***"
    extra = records[4]
    assert (extra["card"], extra["phone"], extra["seq"]) == ("****E5F6", "138****5678", 7)
    assert extra["headers"] == {"authorization": "***"}
    assert records[5]["message"] == "tap failed"
    assert "ValueError: reader returned ****E5F6 for 138****5678" in records[5]["exc"]


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("card 04:A1:B2:C3", "card ****B2C3"),
        ("uid=04a1b2c3", "uid=****b2c3"),
        ('{"card": "1234567"}', '{"card": "****4567"}'),
        ("+86 138 1234 5678", "138****5678"),
        ("event 0190c5e4-1f2a-7b3c-9d4e-5f6a7b8c9d0e seq 12", "event 0190c5e4-1f2a-7b3c-9d4e-5f6a7b8c9d0e seq 12"),
        ("secret: " + "ab" * 32, "secret: ***"),
        ("hash " + "ab" * 32, "hash ****abab"),
        ("queue 250 of 1000, roster v3", "queue 250 of 1000, roster v3"),
        ('"password":"x y"', '"password":"***"'),
    ],
)
def test_redact_rules(given, shown):
    assert logs.redact(given) == shown


def test_kiosk_run_logs_json_with_the_card_masked(tmp_path):
    dead = f"mqtt://127.0.0.1:{free_port()}"
    args = ["kiosk", "run", "--school", "s1", "--kiosk", "gate-1", "--reader", "sim", "--no-ui", "--log-format", "json",
            "--data-dir", str(tmp_path), "--mqtt-url", dead]
    proc = subprocess.Popen(
        [sys.executable, "-m", "schoolgate", *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env(),
    )
    try:
        proc.stdin.write("04A1B2C3\n")
        proc.stdin.flush()
        decision = json.loads(proc.stdout.readline())  # the decision is recorded before it is printed
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert decision["seq"] == 1
    records = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    events = [r for r in records if r["logger"] == "kiosk.runtime" and r["message"].startswith("event seq")]
    assert len(events) == 1, err
    assert events[0]["message"].startswith("event seq 1 unknown_card card ****B2C3")
    assert events[0]["seq"] == 1 and events[0]["kind"] == "unknown_card"
    assert "04A1B2C3" not in err


def test_log_format_is_text_or_json():
    proc = subprocess.run([sys.executable, "-m", "schoolgate", "central", "ingest", "--log-format", "xml"],
                          capture_output=True, text=True, timeout=60, env=clean_env())
    assert proc.returncode == 2
    assert "xml" in proc.stderr
