"""One physical card, read by an NFC reader and by a keyboard-wedge reader typing the number
printed on it, resolves to the same student: through central's roster import with
``--card-format`` and the roster the kiosk builds from central's snapshot."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlmodel import Session, select

from central.admin import card_formats
from central.core.cards import canonical_card
from central.core.db import make_engine, migrate
from central.kiosks import roster as central_roster
from central.imports.importer import ImportRejected, import_roster
from central.schools.models import Card, School
from gateway import protocol
from hardware import connect
from hardware.nfc import NfcReader
from hardware.udpcard import UdpCard
from kiosk.roster import Roster


@pytest.fixture
def session(tmp_path: Path):
    engine = make_engine("sqlite:///" + str(tmp_path / "central.sqlite3"))
    migrate(engine)
    with Session(engine) as s:
        yield s
    engine.dispose()


def students_csv(tmp_path: Path, *rows: tuple[str, str, str]) -> Path:
    path = tmp_path / "students.csv"
    lines = ["学号,姓名,年级,班级,卡号,建档立卡"] + [f"{no},{name},一年级,1班,{card},否" for no, name, card in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def kiosk_roster(session: Session, school: str) -> Roster:
    code = session.exec(select(School).where(School.code == school)).one()
    change = central_roster.refresh(session, code) or central_roster.current(code)
    return Roster.from_snapshot(protocol.parse_snapshot(change.snapshot))


def test_nfc_and_keyboard_wedge_reads_of_one_card_resolve_to_one_student(session, tmp_path, udp_port, pty) -> None:
    # The school's list has the 10-digit numbers printed on the cards, as cheap readers type them.
    students = students_csv(tmp_path, ("1001", "张三", "0077705923"), ("1002", "李四", "0000000001"))
    import_roster(session, school="s1", students=students, guardians=None, card_format="decimal", create_school=True)
    assert {c.uid for c in session.exec(select(Card))} == {"04A1B2C3", "00000001"}
    gate = kiosk_roster(session, "s1")

    with NfcReader(f"udp:localhost:{udp_port}") as nfc_reader, ThreadPoolExecutor(1) as pool:
        presenting = pool.submit(UdpCard(udp_port).present, "04a1b2c3")
        by_nfc = nfc_reader.read(timeout=4)
        presenting.result(timeout=5)
    term = pty()
    with connect(f"keyboard:{term.path}?format=decimal") as wedge:
        term.write(b"0077705923\r")
        by_wedge = wedge.read(timeout=2)

    assert by_nfc is not None and by_wedge is not None
    assert (by_nfc.tech, by_wedge.tech) == ("iso14443a", "keyboard")
    found = gate.lookup(by_nfc.uid)
    assert found is not None and found[0] == "student"
    assert gate.lookup(by_wedge.uid) == found
    assert gate.students[found[1]].name == "张三"


@pytest.mark.parametrize(
    ("text", "card_format", "uid"),
    [
        ("04-a1-b2-c3", "hex", "04A1B2C3"),
        ("77705923", "decimal", "04A1B2C3"),  # Excel dropped the leading zeros
        ("3283263748", "decimal-reversed", "04A1B2C3"),
        ("161,45763", "wiegand26", "A1B2C3"),
        ("1185,45763", "wiegand34", "04A1B2C3"),
        ("1A00452D92", "em4100", "1A00452D92"),
    ],
)
def test_canonical_card_takes_every_format(text: str, card_format: str, uid: str) -> None:
    assert canonical_card(text, card_format) == uid


def test_formats_per_file_and_bad_cells_are_row_errors(session, tmp_path) -> None:
    students = students_csv(tmp_path, ("1001", "张三", "0077705923"), ("1002", "李四", "04A1B2C3"))
    with pytest.raises(ImportRejected) as rejected:
        import_roster(session, school="s1", students=students, guardians=None, card_format={"students": "decimal"},
                      create_school=True)
    [error] = rejected.value.errors
    assert (error.row, error.column) == (3, "卡号") and "decimal card number" in error.reason
    with pytest.raises(ValueError, match="card format students='octal'"):
        import_roster(session, school="s1", students=students, guardians=None, card_format="octal")
    assert session.exec(select(Card)).all() == []


def test_card_format_options_of_the_command_line() -> None:
    assert card_formats([]) == {}
    assert card_formats(["decimal"]) == {"students": "decimal", "guardians": "decimal"}
    assert card_formats(["hex", "guardians=wiegand26"]) == {"students": "hex", "guardians": "wiegand26"}
