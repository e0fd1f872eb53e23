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


def test_nfc_options_in_the_spec(udp_port: int) -> None:
    with connect(f"nfc:udp:localhost:{udp_port}?targets=106A,212F&interval=0.02") as reader:
        assert reader.path == f"udp:localhost:{udp_port}"
        assert reader.targets == ("106A", "212F")
        assert reader.interval == 0.02
    with pytest.raises(ReaderError) as refused:
        connect(f"nfc:udp:localhost:{udp_port}?target=106A")
    assert refused.value.text("en") == (
        f"unknown option 'target' in reader spec 'nfc:udp:localhost:{udp_port}?target=106A'; this reader takes: targets, interval"
    )
    assert str(refused.value) == (
        f"读卡器设置 'nfc:udp:localhost:{udp_port}?target=106A' 中有未知选项 'target'；此读卡器可用的选项：targets, interval"
    )
    with pytest.raises(ReaderError, match="106A"):
        connect(f"nfc:udp:localhost:{udp_port}?targets=106Z")


def test_serial_and_keyboard_specs_open_their_readers(pty) -> None:
    from hardware.keyboard import KeyboardReader
    from hardware.serial import SerialReader

    with connect("serial:loop://?protocol=line&baud=115200") as reader:
        assert isinstance(reader, SerialReader)
        assert (reader.port, reader.protocol, reader.baud) == ("loop://", "line", 115200)
    with connect(f"keyboard:{pty().path}?format=hex") as reader:
        assert isinstance(reader, KeyboardReader) and reader.card_format == "hex"


def test_every_reader_says_how_it_is(udp_port: int, pty) -> None:
    for spec in ("sim", f"nfc:udp:localhost:{udp_port}", "serial:loop://", f"keyboard:{pty().path}"):
        reader = connect(spec)
        assert reader.state == "ok"
        reader.close()
        assert reader.state == "closed"


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
        "serial",
        "serial:",
        "keyboards",
        "pcsc:0",
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
    message = raised.value.text("en")
    assert message.startswith(f"unknown reader spec {spec.strip()!r}; valid forms are: ")
    assert str(raised.value).startswith(f"未知的读卡器设置 {spec.strip()!r}；有效的写法：")
    for form in ("sim", "nfc:usb", "nfc:tty:", "nfc:udp", "serial:PORT?protocol=rdm6300|line", "loop://", "keyboard"):
        assert form in message


@pytest.mark.parametrize("path", ["tty:SCHOOLGATE_NO_SUCH_PORT:pn532", "usb:ffff:ffff"])
def test_nfc_device_that_cannot_be_opened_is_a_reader_error_naming_the_path(path: str) -> None:
    with pytest.raises(ReaderError) as raised:
        connect(f"nfc:{path}")
    assert path in str(raised.value)
