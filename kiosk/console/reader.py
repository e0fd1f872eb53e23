"""Which reader the console reads from."""

from __future__ import annotations

from typing import Any

from hardware import Reader, ReaderError, connect
from hardware.keyboard import LENGTHS


def open_reader(spec: str) -> tuple[Reader | None, dict[str, Any]]:
    """The reader the console reads from, and its keyboard-wedge options.

    A wedge reader on the console's own keyboard (``keyboard`` without a TTY) is read from the
    console's key events, since the console owns the terminal; every other spec is opened as usual.
    """
    family, _, rest = spec.partition("?")
    if family == "keyboard":
        options = dict(pair.split("=", 1) for pair in rest.split("&") if "=" in pair)
        card_format = options.get("format", "decimal")
        if card_format not in LENGTHS:
            raise ReaderError("hardware.card_format", formats=", ".join(LENGTHS), given=card_format)
        try:
            gap = float(options.get("gap", 0.05))
        except ValueError:
            raise ReaderError("hardware.gap", given=options["gap"]) from None
        return None, {"wedge_format": card_format, "wedge_gap": gap}
    return connect(spec), {}
