"""Card numbers in the forms found in the field, and the canonical hex they all turn into."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hardware import cardnumber
from hardware.cardnumber import FORMATS, forms, parse, render

# One 4-byte Mifare UID written every way a school meets it.
MIFARE = "04A1B2C3"


@pytest.mark.parametrize(
    ("text", "card_format", "uid"),
    [
        ("04a1b2c3", "hex", MIFARE),
        ("04:A1:B2:C3:D4:E5:F6", "hex", "04A1B2C3D4E5F6"),
        ("0077705923", "decimal", MIFARE),
        ("77705923", "decimal", MIFARE),  # a spreadsheet dropped the leading zeros
        (" 0077705923\n", "decimal", MIFARE),
        ("3283263748", "decimal-reversed", MIFARE),
        ("161,45763", "wiegand26", "A1B2C3"),
        ("161，45763", "wiegand26", "A1B2C3"),  # full-width comma from a Chinese spreadsheet
        ("16145763", "wiegand26", "A1B2C3"),
        ("1185,45763", "wiegand34", MIFARE),
        ("1a00452d92", "em4100", "1A00452D92"),
        ("0000000000", "decimal", "00000000"),
        ("4294967295", "decimal", "FFFFFFFF"),
    ],
)
def test_parse(text: str, card_format: str, uid: str) -> None:
    assert parse(text, card_format) == uid


@pytest.mark.parametrize(
    ("text", "card_format", "says"),
    [
        ("4294967296", "decimal", "larger than 4 bytes"),
        ("12345678901", "decimal", "up to 10 digits"),
        ("0x04A1B2C3", "decimal", "up to 10 digits"),
        ("", "decimal", "up to 10 digits"),
        ("256,1", "wiegand26", "facility is 0-255"),
        ("1,65536", "wiegand26", "card 0-65535"),
        ("1614576", "wiegand26", "8 digits"),
        ("25665536", "wiegand26", "facility is 0-255"),
        ("65536,1", "wiegand34", "0-65535"),
        ("0077705923", "wiegand34", "facility,card"),
        ("04A1B2C3", "em4100", "10 hex digits"),
        ("04A1B2", "hex", "4 to 10 bytes"),
        ("04A1B2C3", "octal", "unknown card format 'octal'"),
    ],
)
def test_parse_refuses_with_a_reason(text: str, card_format: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse(text, card_format)


def test_every_form_of_one_card() -> None:
    assert forms(MIFARE) == {
        "hex": MIFARE,
        "decimal": "0077705923",
        "decimal-reversed": "3283263748",
        "wiegand26": "161,45763",
        "wiegand34": "01185,45763",
    }
    assert cardnumber.to_wiegand26(MIFARE, digits=True) == "16145763"


def test_an_em4100_id_prints_as_its_last_four_bytes() -> None:
    # What is printed on a 125 kHz key fob: the decimal and Wiegand-26 of the 4 data bytes.
    assert forms("1A00452D92") == {
        "hex": "1A00452D92",
        "em4100": "1A00452D92",
        "decimal": "0004533650",
        "decimal-reversed": "2452440320",
        "wiegand26": "069,11666",
        "wiegand34": "00069,11666",
    }


def test_a_7_byte_uid_has_only_its_hex_form() -> None:
    assert forms("04A1B2C3D4E5F6") == {"hex": "04A1B2C3D4E5F6"}
    with pytest.raises(ValueError, match="4-byte"):
        render("04A1B2C3D4E5F6", "decimal")


four_bytes = st.binary(min_size=4, max_size=4).map(lambda b: b.hex().upper())


@given(four_bytes, st.sampled_from(["hex", "decimal", "decimal-reversed", "wiegand34"]))
def test_exact_forms_round_trip(uid: str, card_format: str) -> None:
    assert parse(render(uid, card_format), card_format) == uid


@given(st.binary(min_size=4, max_size=10).map(lambda b: b.hex()))
def test_hex_round_trips_any_uid(uid: str) -> None:
    assert parse(render(uid, "hex"), "hex") == uid.upper()


@given(st.binary(min_size=5, max_size=5).map(lambda b: b.hex().upper()))
def test_em4100_round_trips(uid: str) -> None:
    assert parse(render(uid, "em4100"), "em4100") == uid
    # its printed decimal is that of the 4 data bytes
    assert parse(render(uid, "decimal"), "decimal") == uid[2:]


@given(four_bytes)
def test_wiegand26_keeps_the_low_three_bytes(uid: str) -> None:
    assert parse(render(uid, "wiegand26"), "wiegand26") == uid[2:]
    assert parse(cardnumber.to_wiegand26(uid, digits=True), "wiegand26") == uid[2:]


@given(st.integers(0, 255), st.integers(0, 65535))
def test_wiegand26_numbers_round_trip(facility: int, card: int) -> None:
    text = f"{facility:03d},{card:05d}"
    assert render(parse(text, "wiegand26"), "wiegand26") == text
    assert cardnumber.to_wiegand26(parse(text.replace(",", ""), "wiegand26"), digits=True) == text.replace(",", "")


@given(st.integers(0, 2**32 - 1), st.booleans())
def test_decimal_numbers_round_trip(number: int, reversed_bytes: bool) -> None:
    card_format = "decimal-reversed" if reversed_bytes else "decimal"
    assert render(parse(str(number), card_format), card_format) == f"{number:010d}"


@given(st.text(max_size=30), st.sampled_from(list(FORMATS)))
def test_any_text_parses_or_is_refused_with_a_value_error(text: str, card_format: str) -> None:
    try:
        uid = parse(text, card_format)
    except ValueError:
        return
    assert uid == uid.upper() and len(uid) % 2 == 0
