"""What deploy/ ships (issue 18): systemd units, the Mosquitto drop-in, udev rules and the modprobe
file. The units pass `systemd-analyze verify` and every ExecStart names a real command of ours
with options it has."""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
INSTALLED = "/opt/schoolgate/venv/bin/schoolgate"  # where docs/install.md puts the package
# nfcpy's USB readers ("Supported devices" in nfcpy's documentation): vendor, product.
NFCPY_USB = {("054c", "02e1"), ("054c", "06c1"), ("054c", "06c3"), ("054c", "0193"), ("04cc", "0531"),
             ("04cc", "2533"), ("072f", "2200"), ("04e6", "5591"), ("04e6", "5593")}


def unit(path: Path) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(path.read_text(encoding="utf-8"))
    return parser


def exec_start(path: Path) -> list[str]:
    lines = [line.split("=", 1)[1] for line in path.read_text().splitlines() if line.startswith("ExecStart=")]
    return shlex.split([line for line in lines if line][-1])


def test_the_expected_units_ship():
    assert [p.name for p in UNITS] == ["schoolgate-central.service", "schoolgate-ingest@.service",
                                       "schoolgate-kiosk-headless.service", "schoolgate-kiosk.service"]


def test_units_pass_systemd_analyze_verify(tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true: systemd-analyze (Debian package systemd) is needed and missing")
        pytest.skip("needs systemd-analyze (Debian package systemd) to verify the unit files")
    # verify checks that ExecStart's program exists: point it at this environment's schoolgate.
    here = Path(sys.executable).parent / "schoolgate"
    assert here.exists(), here
    for path in UNITS:
        (tmp_path / path.name).write_text(path.read_text().replace(INSTALLED, str(here)))
    names = [p.name.replace("@.service", "@0-2.service") for p in UNITS]  # a template is verified as an instance
    result = subprocess.run([tool, "verify", "--man=no", *names], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    # verify exits 0 on an unknown key or a bad value and only says so: anything said is a failure.
    assert result.returncode == 0 and result.stderr.strip() == "" and result.stdout.strip() == "", result.stderr


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_exec_start_names_a_real_command_with_options_it_has(path):
    argv = exec_start(path)
    assert argv[0] == INSTALLED
    words = [a for a in argv[1:] if not a.startswith("-")]
    options = [a for a in argv[1:] if a.startswith("--")]
    command = argv[1:1 + next(i for i, a in enumerate(argv[1:]) if a.startswith("-"))]
    assert command and set(command) <= set(words)
    env = {**os.environ, "COLUMNS": "200", "TERM": "dumb", "NO_COLOR": "1"}
    result = subprocess.run([sys.executable, "-m", "schoolgate", *command, "--help"], capture_output=True, text=True,
                            timeout=60, env=env)
    assert result.returncode == 0, (command, result.stderr)
    for option in options:
        assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", result.stdout), (path.name, option)


def test_every_unit_restarts_and_runs_unprivileged():
    for path in UNITS:
        service = unit(path)["Service"]
        assert service["Restart"] == "always", path.name
        assert service["User"] == "schoolgate", path.name


def test_the_kiosk_console_owns_the_gates_screen_and_headless_prints_json():
    console = unit(DEPLOY / "systemd" / "schoolgate-kiosk.service")
    assert console["Service"]["TTYPath"] == "/dev/tty1" and console["Service"]["StandardInput"] == "tty"
    assert "getty@tty1.service" in console["Unit"]["Conflicts"]
    assert "--no-ui" not in exec_start(DEPLOY / "systemd" / "schoolgate-kiosk.service")
    assert "--no-ui" in exec_start(DEPLOY / "systemd" / "schoolgate-kiosk-headless.service")
    for name in ("schoolgate-kiosk.service", "schoolgate-kiosk-headless.service"):
        assert {"plugdev", "dialout"} <= set(unit(DEPLOY / "systemd" / name)["Service"]["SupplementaryGroups"].split())


def test_ingest_workers_take_their_partition_from_the_instance():
    service = unit(DEPLOY / "systemd" / "schoolgate-ingest@.service")["Service"]
    assert service["Environment"] == "SCHOOLGATE_INGEST_PARTITION=%I"  # schoolgate-ingest@0-2 is worker 0/2


def test_mosquitto_runs_the_generated_configuration_and_reloads_with_sighup():
    text = (DEPLOY / "systemd" / "mosquitto.service.d" / "schoolgate.conf").read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    # ExecStart= empties Debian's before ours replaces it; the path is mosquitto-config's --out in docs/install.md.
    assert lines == ["[Service]", "ExecStart=", "ExecStart=/usr/sbin/mosquitto -c /etc/schoolgate/mosquitto/mosquitto.conf"]
    for doc in ("install.md", "install.en.md"):
        path = DEPLOY.parent / "docs" / doc
        if path.exists():
            assert "mosquitto-config --out /etc/schoolgate/mosquitto" in path.read_text(), doc


def test_udev_rules_give_every_nfcpy_usb_reader_and_serial_port_to_a_group():
    rules = [line for line in (DEPLOY / "udev" / "60-schoolgate-readers.rules").read_text().splitlines()
             if line and not line.startswith("#")]
    usb = set()
    for rule in rules:
        keys = dict(re.findall(r'(\w+(?:\{\w+\})?)[=!]=?"([^"]*)"', rule))
        assert keys["MODE"] == "0660" and keys["GROUP"] in ("plugdev", "dialout"), rule
        if keys["SUBSYSTEM"] == "usb":
            usb.add((keys["ATTR{idVendor}"], keys["ATTR{idProduct}"]))
    assert usb == NFCPY_USB
    assert sum('SUBSYSTEM=="tty"' in r and 'GROUP="dialout"' in r for r in rules) == 2
    modprobe = (DEPLOY / "modprobe.d" / "schoolgate-nfc.conf").read_text().split()
    assert {"port100", "pn533_usb", "pn533"} <= set(modprobe)
