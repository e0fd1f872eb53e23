"""Card and phone numbers as central stores them (central/core/cards.py): the roster import and staff cards use them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from central.core.cards import canonical_card, canonical_phone


@pytest.mark.parametrize(("text", "uid"), [
    ("04a1b2c3", "04A1B2C3"),
    ("04:A1:B2:C3:D4:E5:F6", "04A1B2C3D4E5F6"),
    (" 04 a1 b2 c3 d4 e5 f6 07 08 09 ", "04A1B2C3D4E5F6070809"),
])
def test_canonical_card(text, uid):
    assert canonical_card(text) == uid


@pytest.mark.parametrize("text", ["04A1B2", "04A1B2C", "04A1B2C3D4E5F6070809AA", "04A1B2G3", "0x04A1B2C3", "卡"])
def test_canonical_card_refuses(text):
    with pytest.raises(ValueError):
        canonical_card(text)


@given(st.binary(min_size=4, max_size=10), st.sampled_from(["", ":", " ", "-"]), st.booleans())
def test_canonical_card_is_upper_hex_of_the_bytes(uid, sep, lower):
    text = sep.join(f"{b:02x}" if lower else f"{b:02X}" for b in uid)
    assert canonical_card(text) == uid.hex().upper()


@pytest.mark.parametrize(("text", "phone"), [
    ("13800138000", "13800138000"), ("+86 138 0013 8000", "13800138000"), ("199-0000-0000", "19900000000"), ("", ""),
])
def test_canonical_phone(text, phone):
    assert canonical_phone(text) == phone


@pytest.mark.parametrize("text", ["12800138000", "1380013800", "138001380000", "010-12345678", "+1 13800138000"])
def test_canonical_phone_refuses(text):
    with pytest.raises(ValueError):
        canonical_phone(text)
