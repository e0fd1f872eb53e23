"""Card readers for the kiosks, one module per reader family, chosen by a spec string.

>>> reader = connect("sim")                       # doctest: +SKIP
>>> reader = connect("nfc:usb")                   # doctest: +SKIP
>>> reader = connect("nfc:udp:localhost:54321")   # doctest: +SKIP
>>> reader = connect("serial:/dev/ttyUSB0?protocol=rdm6300")   # doctest: +SKIP
>>> reader = connect("keyboard?format=decimal-reversed")       # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .base import PATTERNS, CardTap, Reader, ReaderError, canonical_uid
from .cardnumber import FORMATS
from .sim import SimulatedReader

__all__ = [
    "CardTap",
    "FORMATS",
    "PATTERNS",
    "Reader",
    "ReaderError",
    "SimulatedReader",
    "SPEC_FORMS",
    "canonical_uid",
    "connect",
]


def _options(spec: str, query: str, allowed: dict[str, Callable[[str], Any]]) -> tuple[dict[str, Any], list[str]]:
    """Split ``a=1&b=2`` into the options ``allowed`` converts and the raw parts it does not know."""
    options: dict[str, Any] = {}
    unknown: list[str] = []
    for part in filter(None, query.split("&")):
        key, _, value = part.partition("=")
        if key not in allowed:
            unknown.append(part)
            continue
        try:
            options[key] = allowed[key](value)
        except ValueError:
            raise ReaderError("hardware.bad_value", value=value, option=key, spec=spec) from None
    return options, unknown


def _refuse_unknown(spec: str, unknown: list[str], allowed: dict[str, Any]) -> None:
    if unknown:
        raise ReaderError(
            "hardware.unknown_option", option=unknown[0].partition("=")[0], spec=spec, allowed=", ".join(allowed)
        )


def _seconds(value: str) -> float:
    seconds = float(value)
    if not 0 < seconds < 3600:
        raise ValueError(value)
    return seconds


def _open_sim(rest: str, spec: str, **options: Any) -> Reader:
    return SimulatedReader(spec, **options)


_NFC_OPTIONS = {"targets": lambda v: tuple(filter(None, v.split(","))), "interval": _seconds}


def _open_nfc(rest: str, spec: str, **options: Any) -> Reader:
    path, _, query = rest.partition("?")
    if path.split(":", 1)[0] not in ("usb", "tty", "com", "udp"):
        raise _bad_spec(spec)
    parsed, unknown = _options(spec, query, _NFC_OPTIONS)
    _refuse_unknown(spec, unknown, _NFC_OPTIONS)
    # imported here so that kiosks and tests on simulated readers never load nfcpy and libusb
    from .nfc import NfcReader

    try:
        return NfcReader(path, spec, **{**parsed, **options})
    except ValueError as error:
        raise ReaderError("hardware.spec_invalid", spec=spec, problem=str(error)) from None


_SERIAL_OPTIONS = {"protocol": str, "baud": int, "format": str, "version_byte": str}


def _open_serial(rest: str, spec: str, **options: Any) -> Reader:
    port, _, query = rest.partition("?")
    if not port:
        raise _bad_spec(spec)
    parsed, unknown = _options(spec, query, _SERIAL_OPTIONS)
    if unknown and "://" not in port:
        _refuse_unknown(spec, unknown, _SERIAL_OPTIONS)
    if unknown:
        port += "?" + "&".join(unknown)  # a pyserial URL's own options, e.g. loop://?logging=debug
    if "format" in parsed:
        parsed["card_format"] = parsed.pop("format")
    from .serial import SerialReader

    return SerialReader(port, spec, **{**parsed, **options})


_KEYBOARD_OPTIONS = {"format": str, "gap": _seconds}


def _open_keyboard(rest: str, spec: str, **options: Any) -> Reader:
    path, _, query = rest.partition("?")
    parsed, unknown = _options(spec, query, _KEYBOARD_OPTIONS)
    _refuse_unknown(spec, unknown, _KEYBOARD_OPTIONS)
    if "format" in parsed:
        parsed["card_format"] = parsed.pop("format")
    if "gap" in parsed:
        parsed["max_gap"] = parsed.pop("gap")
    from .keyboard import KeyboardReader

    return KeyboardReader(path or None, spec, **{**parsed, **options})


# family -> opener(rest of the spec after "family:", whole spec, **options); a new reader
# family is one module plus one entry here and one line in SPEC_FORMS.
_FAMILIES: dict[str, Callable[..., Reader]] = {
    "sim": _open_sim,
    "nfc": _open_nfc,
    "serial": _open_serial,
    "keyboard": _open_keyboard,
}

SPEC_FORMS = (
    "sim[:NAME]  (simulated reader fed by SimulatedReader.present)",
    "nfc:usb[:VID:PID]  (e.g. nfc:usb, nfc:usb:054c:06c3, nfc:usb:001:023)",
    "nfc:tty:PORT:DRIVER  (e.g. nfc:tty:USB0:pn532; nfc:com:COM3:pn532 on Windows)",
    "nfc:udp[:HOST[:PORT]]  (nfcpy's simulated radio, e.g. nfc:udp:localhost:54321)",
    "nfc:PATH?targets=106A,106B,212F&interval=0.05  (options of every nfc: spec: card types polled, seconds between polls)",
    "serial:PORT?protocol=rdm6300|line&baud=9600  (PORT a device such as /dev/ttyUSB0 or a pyserial"
    " URL such as loop://, socket://HOST:PORT, rfc2217://HOST:PORT; rdm6300 also takes"
    " version_byte=keep|drop, line takes format=" + "|".join(FORMATS) + ")",
    "keyboard[:TTY][?format=decimal&gap=0.05]  (a reader that types the number and Enter;"
    " standard input, or a terminal device)",
)


def _bad_spec(spec: str) -> ReaderError:
    return ReaderError("hardware.bad_spec", spec=spec, forms="; ".join(SPEC_FORMS))


def connect(spec: str, **options: Any) -> Reader:
    """Open the reader a spec string names.

    Args:
        spec: ``sim``, ``sim:NAME``; ``nfc:`` followed by an nfcpy device path
            (``nfc:usb``, ``nfc:usb:054c:06c3``, ``nfc:tty:USB0:pn532``,
            ``nfc:udp:localhost:54321``); ``serial:PORT?protocol=rdm6300|line&baud=9600``;
            ``keyboard[:TTY][?format=decimal]``. ``SPEC_FORMS`` lists them all.
        **options: passed to the reader family's class, e.g. ``targets=("106A", "212F")``
            for ``nfc:`` readers; they win over options in the spec.

    Returns:
        The open reader; its ``spec`` is ``spec``.

    Raises:
        ReaderError: the spec has no valid form (the message lists the valid ones), an
            option in it is unknown or bad, or the device could not be opened.
    """
    spec = spec.strip()
    family = re.split(r"[:?]", spec, maxsplit=1)[0]
    # "keyboard?format=decimal": options may follow the family name directly
    rest = spec[len(family) + 1 :] if spec[len(family) : len(family) + 1] == ":" else spec[len(family) :]
    opener = _FAMILIES.get(family)
    if opener is None:
        raise _bad_spec(spec)
    return opener(rest, spec, **options)
