"""Card numbers as they are written in the field, and the one canonical form they turn into.

The canonical form is upper-case hex of the UID bytes in the order the card sends them
(``04A1B2C3``). Rosters, the number printed on a card and cheap readers use other forms:

* ``decimal``: the 10-digit decimal of the 4 UID bytes read with the first byte most
  significant (``04A1B2C3`` -> ``0077705923``). An EM4100 card's 5-byte ID prints as the
  decimal of its last 4 bytes (the version byte is not part of the printed number).
* ``decimal-reversed``: the same 4 bytes read with the last byte most significant
  (``04A1B2C3`` -> ``3283263748``), what many USB readers that type the number out produce.
* ``wiegand26``: ``facility,card`` (``161,45763``) or its 8-digit form (``16145763``): the
  low 24 bits of the 32-bit number above. Wiegand-26 carries only those 24 bits, so a number
  in this form turns into the 3 bytes it does carry (``A1B2C3``); it identifies a card only
  against other Wiegand-26 readers, never against an NFC or EM4100 reader that sees all bytes.
* ``wiegand34``: ``facility,card`` with 16 bits each (``1185,45763``), the whole 32-bit number.
* ``em4100``: the 10 hex digits of an EM4100 card (``1A00452D92``), as RDM6300 readers send them.
"""

from __future__ import annotations

import re

from i18n import LocalizedValueError

from .base import canonical_uid

FORMATS: dict[str, str] = {
    "hex": "hex of the UID bytes as the card sends them, e.g. 04A1B2C3 (the canonical form)",
    "decimal": "10-digit decimal of the 4 UID bytes, first byte most significant, e.g. 0077705923",
    "decimal-reversed": "10-digit decimal of the 4 UID bytes, last byte most significant, e.g. 3283263748",
    "wiegand26": "Wiegand-26 facility,card (161,45763) or its 8 digits (16145763); only 24 bits",
    "wiegand34": "Wiegand-34 facility,card with 16 bits each, e.g. 1185,45763",
    "em4100": "EM4100 ID as 10 hex digits, e.g. 1A00452D92",
}

_DIGITS = re.compile(r"\d+")
_PAIR = re.compile(r"(\d+)\s*[,，/]\s*(\d+)")  # a full-width comma comes from Chinese spreadsheets


def parse(text: str, card_format: str = "hex") -> str:
    """Turn a card number written in ``card_format`` (a key of ``FORMATS``) into the canonical form.

    Raises ValueError naming the format and what is wrong with ``text``.
    """
    if card_format not in FORMATS:
        raise ValueError(f"unknown card format {card_format!r}; use one of: {', '.join(FORMATS)}")
    text = text.strip()
    if card_format == "hex":
        return canonical_uid(text)
    if card_format == "em4100":
        try:
            return canonical_uid(text, min_bytes=5, max_bytes=5)
        except ValueError:
            raise LocalizedValueError("card.em4100_digits", text=text) from None
    if card_format in ("decimal", "decimal-reversed"):
        return from_decimal(text, reversed_bytes=card_format == "decimal-reversed")
    if card_format == "wiegand26":
        return from_wiegand26(text)
    return from_wiegand34(text)


def render(uid: str, card_format: str) -> str:
    """Write a canonical UID in ``card_format``; ValueError if the UID has no such form."""
    if card_format not in FORMATS:
        raise ValueError(f"unknown card format {card_format!r}; use one of: {', '.join(FORMATS)}")
    if card_format == "hex":
        return canonical_uid(uid)
    if card_format == "em4100":
        return to_em4100(uid)
    if card_format in ("decimal", "decimal-reversed"):
        return to_decimal(uid, reversed_bytes=card_format == "decimal-reversed")
    if card_format == "wiegand26":
        return to_wiegand26(uid)
    return to_wiegand34(uid)


def forms(uid: str) -> dict[str, str]:
    """Every form of ``uid`` that exists (a 7-byte UID has no decimal form, for instance)."""
    out = {}
    for card_format in FORMATS:
        try:
            out[card_format] = render(uid, card_format)
        except ValueError:
            continue
    return out


# --- decimal -----------------------------------------------------------------------------


def _number(uid: str, reversed_bytes: bool = False) -> int:
    """The 32-bit number printed for a card: its 4 UID bytes, or an EM4100 ID's last 4."""
    data = bytes.fromhex(canonical_uid(uid, min_bytes=3))
    if len(data) == 5:
        data = data[1:]  # EM4100: the version byte is not part of the printed number
    if len(data) != 4:
        raise ValueError(f"only a 4-byte UID or a 5-byte EM4100 ID has a 10-digit number, not {uid}")
    return int.from_bytes(data, "little" if reversed_bytes else "big")


def to_decimal(uid: str, *, reversed_bytes: bool = False) -> str:
    return f"{_number(uid, reversed_bytes):010d}"


def from_decimal(text: str, *, reversed_bytes: bool = False) -> str:
    digits = text.strip()
    if not _DIGITS.fullmatch(digits) or len(digits) > 10:
        raise LocalizedValueError("card.decimal_digits", text=text)
    number = int(digits)
    if number >= 1 << 32:
        raise LocalizedValueError("card.decimal_too_large", text=text)
    return number.to_bytes(4, "little" if reversed_bytes else "big").hex().upper()


# --- Wiegand -----------------------------------------------------------------------------


def to_wiegand26(uid: str, *, digits: bool = False) -> str:
    """``facility,card`` of the low 24 bits, e.g. ``161,45763``; ``digits`` gives ``16145763``."""
    if len(canonical_uid(uid, min_bytes=3)) == 6:
        number = int(uid, 16)  # the 3 bytes a Wiegand-26 number carries
    else:
        number = _number(uid) & 0xFFFFFF
    facility, card = number >> 16, number & 0xFFFF
    return f"{facility:03d}{card:05d}" if digits else f"{facility:03d},{card:05d}"


def from_wiegand26(text: str) -> str:
    text = text.strip()
    if pair := _PAIR.fullmatch(text):
        facility, card = int(pair[1]), int(pair[2])
    elif _DIGITS.fullmatch(text) and len(text) == 8:
        facility, card = int(text[:3]), int(text[3:])
    else:
        raise LocalizedValueError("card.wiegand26_form", text=text)
    if facility > 0xFF or card > 0xFFFF:
        raise LocalizedValueError("card.wiegand26_range", text=text)
    return f"{facility:02X}{card:04X}"


def to_wiegand34(uid: str) -> str:
    number = _number(uid)
    return f"{number >> 16:05d},{number & 0xFFFF:05d}"


def from_wiegand34(text: str) -> str:
    pair = _PAIR.fullmatch(text.strip())
    if not pair:
        raise LocalizedValueError("card.wiegand34_form", text=text)
    facility, card = int(pair[1]), int(pair[2])
    if facility > 0xFFFF or card > 0xFFFF:
        raise LocalizedValueError("card.wiegand34_range", text=text)
    return f"{facility:04X}{card:04X}"


# --- EM4100 ------------------------------------------------------------------------------


def to_em4100(uid: str) -> str:
    try:
        return canonical_uid(uid, min_bytes=5, max_bytes=5)
    except ValueError:
        raise ValueError(f"an EM4100 ID is 5 bytes, {uid!r} is not one") from None
