"""Card numbers and phone numbers as central stores them, from whatever form a file or a form gives.

Kept apart from the roster import so that staff cards (``central.programme.staff``) can use the same rule
without importing the importer, whose own imports reach enrollment, groups and staff again.
"""

from __future__ import annotations

import re

from hardware import cardnumber
from i18n import LocalizedValueError


def canonical_card(text: str, card_format: str = "hex") -> str:
    """A card UID as stored: upper-case hex of 4 to 10 bytes; spaces, colons and dashes ignored.

    ``card_format`` is how the file writes card numbers (``hardware.cardnumber.FORMATS``: the
    printed decimal, Wiegand, EM4100...); every form is stored canonical, so a card matches
    whichever reader reads it. Raises ValueError with a reason a school admin can act on.
    """
    if card_format != "hex":
        return cardnumber.parse(text, card_format)
    uid = re.sub(r"[\s:-]", "", text).upper()
    if not re.fullmatch(r"[0-9A-F]+", uid):
        raise LocalizedValueError("card.not_hex", text=text)
    if len(uid) % 2 or not 8 <= len(uid) <= 20:
        raise LocalizedValueError("card.hex_length", text=text)
    return uid


def canonical_phone(text: str) -> str:
    """A Chinese mobile number as 11 digits ("" if empty); spaces, dashes and a +86 prefix are dropped."""
    phone = re.sub(r"[\s-]", "", text)
    phone = phone.removeprefix("+86")
    if phone and not re.fullmatch(r"1[3-9]\d{9}", phone):
        raise LocalizedValueError("phone.not_mobile", text=text)
    return phone
