"""Card readers for the kiosks, one module per reader family, chosen by a spec string.

>>> reader = connect("sim")                       # doctest: +SKIP
>>> reader = connect("nfc:usb")                   # doctest: +SKIP
>>> reader = connect("nfc:udp:localhost:54321")   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .base import CardTap, Reader, ReaderError, canonical_uid
from .sim import SimulatedReader

__all__ = [
    "CardTap",
    "Reader",
    "ReaderError",
    "SimulatedReader",
    "SPEC_FORMS",
    "canonical_uid",
    "connect",
]


def _open_sim(rest: str, spec: str, **options: Any) -> Reader:
    return SimulatedReader(spec, **options)


def _open_nfc(rest: str, spec: str, **options: Any) -> Reader:
    if rest.split(":", 1)[0] not in ("usb", "tty", "com", "udp"):
        raise ReaderError(_bad_spec(spec))
    # imported here so that kiosks and tests on simulated readers never load nfcpy and libusb
    from .nfc import NfcReader

    return NfcReader(rest, spec, **options)


# family -> opener(rest of the spec after "family:", whole spec, **options); a new reader
# family is one module plus one entry here and one line in SPEC_FORMS.
_FAMILIES: dict[str, Callable[..., Reader]] = {
    "sim": _open_sim,
    "nfc": _open_nfc,
}

SPEC_FORMS = (
    "sim[:NAME]  (simulated reader fed by SimulatedReader.present)",
    "nfc:usb[:VID:PID]  (e.g. nfc:usb, nfc:usb:054c:06c3, nfc:usb:001:023)",
    "nfc:tty:PORT:DRIVER  (e.g. nfc:tty:USB0:pn532; nfc:com:COM3:pn532 on Windows)",
    "nfc:udp[:HOST[:PORT]]  (nfcpy's simulated radio, e.g. nfc:udp:localhost:54321)",
)


def _bad_spec(spec: str) -> str:
    return f"unknown reader spec {spec!r}; valid forms are: " + "; ".join(SPEC_FORMS)


def connect(spec: str, **options: Any) -> Reader:
    """Open the reader a spec string names.

    Args:
        spec: ``sim``, ``sim:NAME``, or ``nfc:`` followed by an nfcpy device path
            (``nfc:usb``, ``nfc:usb:054c:06c3``, ``nfc:tty:USB0:pn532``,
            ``nfc:udp:localhost:54321``); ``SPEC_FORMS`` lists them all.
        **options: passed to the reader family's class, e.g. ``targets=("106A", "212F")``
            for ``nfc:`` readers.

    Returns:
        The open reader; its ``spec`` is ``spec``.

    Raises:
        ReaderError: the spec has no valid form (the message lists the valid ones), or the
            device could not be opened.
    """
    spec = spec.strip()
    family, _, rest = spec.partition(":")
    opener = _FAMILIES.get(family)
    if opener is None:
        raise ReaderError(_bad_spec(spec))
    return opener(rest, spec, **options)
