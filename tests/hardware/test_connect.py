from __future__ import annotations

import pytest

import hardware
from hardware import Reader, ReaderError, SimulatedReader, connect
from hardware.nfc import NfcReader


def test_package_exports_the_reader_interface() -> None:
    for name in ("CardTap", "Reader", "ReaderError", "SimulatedReader", "connect"):
        assert name in hardware.__all__
        assert getattr(hardware, name) is not None


@pytest.mark.parametrize("spec", ["sim", "sim:front-door", " sim "])
def test_sim_specs_open_a_simulated_reader(spec: str) -> None:
    with connect(spec) as reader:
        assert isinstance(reader, SimulatedReader)
        assert reader.spec == spec.strip()
        reader.present("01020304")
        assert reader.read(timeout=1).reader == spec.strip()


def test_nfc_udp_spec_opens_an_nfcpy_reader(udp_port: int) -> None:
    spec = f"nfc:udp:localhost:{udp_port}"
    with connect(spec) as reader:
        assert isinstance(reader, NfcReader) and isinstance(reader, Reader)
        assert reader.spec == spec
        assert reader.path == f"udp:localhost:{udp_port}"
        assert reader.targets == ("106A",)


def test_options_reach_the_reader_family(udp_port: int) -> None:
    spec = f"nfc:udp:localhost:{udp_port}"
    with connect(spec, targets=("106A", "212F"), interval=0.02) as reader:
        assert reader.targets == ("106A", "212F")
        assert reader.interval == 0.02


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "bogus",
        "serial:/dev/ttyUSB0",
        "keyboard",
        "nfc",
        "nfc:",
        "nfc:bluetooth:00:11",
        "NFC:usb",
        "usb",
        "udp:localhost:54321",
    ],
)
def test_bad_spec_lists_the_valid_forms(spec: str) -> None:
    with pytest.raises(ReaderError) as raised:
        connect(spec)
    message = str(raised.value)
    assert repr(spec.strip()) in message
    for form in ("sim", "nfc:usb", "nfc:tty:", "nfc:udp"):
        assert form in message


@pytest.mark.parametrize("path", ["tty:SCHOOLGATE_NO_SUCH_PORT:pn532", "usb:ffff:ffff"])
def test_nfc_device_that_cannot_be_opened_is_a_reader_error_naming_the_path(path: str) -> None:
    with pytest.raises(ReaderError) as raised:
        connect(f"nfc:{path}")
    assert path in str(raised.value)
