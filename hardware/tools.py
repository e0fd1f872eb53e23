"""What the installer tools need: the readers attached to this machine, and each tap in every
form a card number is written in, to compare with the number printed on the card."""

from __future__ import annotations

import logging
import os
import re
from datetime import tzinfo
from typing import Any

from serial.tools import list_ports

from . import cardnumber
from .base import CardTap

log = logging.getLogger(__name__)


def nfc_devices() -> tuple[list[dict[str, Any]], str | None]:
    """USB readers nfcpy has a driver for, and why the search failed if it did.

    Only USB readers are looked for: probing a serial port for a PN532 sends it commands, which
    would disturb whatever else is attached there. Serial ports are listed by ``serial_ports``.
    """
    try:
        import nfc.clf.device
        import nfc.clf.transport

        found = nfc.clf.transport.USB.find("usb") or []
    except Exception as error:  # no libusb, no permission, a USB stack that fails its own way
        if "libusb" in str(error):
            return [], "libusb-1.0 is not installed (Debian/Ubuntu: apt install libusb-1.0-0)"
        return [], str(error) or type(error).__name__
    devices = []
    for vid, pid, bus, address in found:
        driver = nfc.clf.device.usb_device_map.get((vid, pid))
        if driver is None:
            continue
        devices.append({
            "name": f"usb:{vid:04x}:{pid:04x}",
            "description": f"{driver} (bus {bus:03d} device {address:03d})",
            "specs": [f"nfc:usb:{vid:04x}:{pid:04x}", f"nfc:usb:{bus:03d}:{address:03d}"],
        })
    return devices, None


def serial_ports() -> list[dict[str, Any]]:
    """Serial ports pyserial finds, each with the reader specs that would use it."""
    ports = []
    for port in sorted(list_ports.comports(), key=lambda p: p.device):
        ports.append({
            "name": port.device,
            "description": next((d for d in (port.description, port.hwid) if d and d != "n/a"), ""),
            "specs": [f"serial:{port.device}?protocol=rdm6300", f"serial:{port.device}?protocol=line",
                      f"nfc:tty:{_nfcpy_tty(port.device)}:pn532"],
        })
    return ports


def _nfcpy_tty(device: str) -> str:
    # nfcpy names /dev/ttyUSB0 "tty:USB0" and any other /dev entry by its own name.
    name = os.path.basename(device)
    if re.fullmatch(r"tty(S|ACM|AMA|USB)\d+", name):
        return name[3:]
    return name


def describe(tap: CardTap, tz: tzinfo | None = None) -> dict[str, Any]:
    """A tap with its read time in ``tz`` (the machine's zone by default) and every form of its number."""
    forms = cardnumber.forms(tap.uid)
    return {
        "at": tap.read_at.astimezone(tz).isoformat(timespec="milliseconds"),
        "uid": tap.uid,
        "tech": tap.tech,
        "reader": tap.reader,
        "decimal": forms.get("decimal"),
        "decimal_reversed": forms.get("decimal-reversed"),
        "wiegand26": forms.get("wiegand26"),
        "wiegand34": forms.get("wiegand34"),
        "em4100": forms.get("em4100"),
    }
