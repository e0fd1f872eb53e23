"""The installer tools as an installer runs them: ``schoolgate hardware list`` and
``schoolgate hardware read`` in their own processes, against a pty and nfcpy's udp radio."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from functools import reduce
from operator import xor

from gateway.mqtt import free_port
from hardware import CardTap
from hardware.tools import describe, nfc_devices, serial_ports
from hardware.udpcard import UdpCard


def env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("SCHOOLGATE_")}, **extra}


def _ctrl_c_as_at_a_terminal() -> None:
    # A test run started in the background (`cmd &` in a script) ignores SIGINT, and a program inherits
    # that: the tool would never see the Ctrl-C this test sends. At an installer's terminal it does.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "schoolgate", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(), preexec_fn=_ctrl_c_as_at_a_terminal,
    )


def interrupt(proc: subprocess.Popen) -> tuple[str, str]:
    """Ctrl-C, as the installer stops it."""
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    return out, err


def wait_for(proc: subprocess.Popen, text: str, timeout: float = 20) -> None:
    """Until the tool says on stderr that it is reading (it opens the reader first)."""
    fd, seen, deadline = proc.stderr.fileno(), b"", time.monotonic() + timeout
    while text.encode() not in seen:
        assert time.monotonic() < deadline and proc.poll() is None, seen.decode(errors="replace")
        if select.select([fd], [], [], 0.1)[0]:
            seen += os.read(fd, 4096)


def rdm6300(card: str) -> bytes:
    return b"\x02" + card.encode() + b"%02X" % reduce(xor, bytes.fromhex(card)) + b"\x03"


def test_read_prints_taps_from_an_rdm6300_on_a_pty(pty) -> None:
    port = pty()
    proc = start("hardware", "read", "--reader", f"serial:{port.path}?protocol=rdm6300", "--json")
    try:
        wait_for(proc, "Ctrl-C")
        port.write(b"noise" + rdm6300("1A00452D92") * 3)
        first = json.loads(proc.stdout.readline())
        time.sleep(0.6)  # taken away
        port.write(rdm6300("0102030405"))
        second = json.loads(proc.stdout.readline())
    finally:
        out, err = interrupt(proc)
    assert (first["uid"], first["tech"], first["decimal"], first["wiegand26"]) == (
        "1A00452D92", "em4100", "0004533650", "069,11666")
    assert second["uid"] == "0102030405"
    assert datetime.fromisoformat(first["at"]).tzinfo is not None
    assert out == ""  # nothing more than the two taps
    assert "共读到 2 次刷卡" in err


def test_read_prints_taps_from_an_emulated_nfc_card(udp_port: int) -> None:
    proc = start("hardware", "read", "--reader", f"nfc:udp:localhost:{udp_port}", "--locale", "en")
    try:
        wait_for(proc, "Ctrl-C")
        UdpCard(udp_port).present("04A1B2C3")
        line = proc.stdout.readline()
    finally:
        _, err = interrupt(proc)
    assert "card 04A1B2C3 (iso14443a)" in line
    assert "decimal 0077705923" in line and "reversed decimal 3283263748" in line and "Wiegand-26 161,45763" in line
    assert "Stopped after 1 tap(s)" in err


def test_read_refuses_a_bad_spec_with_the_valid_forms() -> None:
    proc = start("hardware", "read", "--reader", "pcsc:0")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "pcsc:0" in err and "serial:PORT?protocol=rdm6300|line" in err and "keyboard" in err


def test_list_finds_serial_ports_and_survives_having_no_usb_readers(pty) -> None:
    port = pty()
    for args in (("--json",), ("--locale", "en")):
        proc = start("hardware", "list", *args)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
    listed = json.loads(start("hardware", "list", "--json").communicate(timeout=30)[0])
    assert set(listed) == {"nfc", "nfc_problem", "serial"}
    assert all(spec.startswith("nfc:usb:") for device in listed["nfc"] for spec in device["specs"])
    assert "NFC readers (nfcpy):" in out and "Serial ports:" in out
    del port


def test_list_functions() -> None:
    devices, problem = nfc_devices()
    assert isinstance(devices, list) and (problem is None or problem)
    for port in serial_ports():
        assert f"serial:{port['name']}?protocol=rdm6300" in port["specs"]


def test_describe_gives_every_form_of_a_tap() -> None:
    tap = CardTap("04A1B2C3", "iso14443a", "nfc:usb", datetime(2025, 9, 1, 8, 0, tzinfo=UTC))
    shown = describe(tap, UTC)
    assert shown["at"] == "2025-09-01T08:00:00.000+00:00"
    assert (shown["decimal"], shown["decimal_reversed"], shown["wiegand34"], shown["em4100"]) == (
        "0077705923", "3283263748", "01185,45763", None)
    assert describe(CardTap("04A1B2C3D4E5F6", "iso14443a", "nfc:usb", tap.read_at))["decimal"] is None


def test_central_import_takes_a_card_format(tmp_path) -> None:
    students = tmp_path / "学生.csv"
    students.write_text("学号,姓名,年级,班级,卡号,建档立卡\n1001,王一,三年级,1班,0077705923,否\n", encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    run = [sys.executable, "-m", "schoolgate", "central", "import", str(students), "--school", "s1", "--create-school"]
    extra = {"SCHOOLGATE_DATABASE_URL": db, "SCHOOLGATE_MQTT_URL": f"mqtt://127.0.0.1:{free_port()}"}

    good = subprocess.run([*run, "--card-format", "decimal"], capture_output=True, text=True, timeout=60, env=env(**extra))
    assert good.returncode == 0, good.stderr
    import sqlalchemy as sa

    engine = sa.create_engine(db)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT uid FROM card")).scalars().all() == ["04A1B2C3"]
    engine.dispose()


def test_central_import_refuses_an_unknown_card_format(tmp_path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from schoolgate.cli import app

    students = tmp_path / "s.csv"
    students.write_text("学号,姓名,年级,班级,卡号,建档立卡\n", encoding="utf-8")
    monkeypatch.setenv("SCHOOLGATE_DATABASE_URL", f"sqlite:///{tmp_path / 'c.sqlite3'}")
    result = CliRunner().invoke(app, ["central", "import", str(students), "--school", "s1", "--card-format", "octal"])
    assert result.exit_code == 2
    assert "octal" in result.output and "wiegand26" in result.output
