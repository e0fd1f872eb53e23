"""Readers on a serial port, through pyserial: 125 kHz RDM6300/EM4100 modules and plain readers
that send one card number per line.

The port is a device (``/dev/ttyUSB0``, ``/dev/ttyAMA0``, ``COM3``) or any pyserial URL
(``loop://``, ``socket://host:port``, ``rfc2217://host:port``). A port that fails or vanishes
(a USB adapter pulled out) is reopened at the same path with backoff, so a reader plugged back
in works again without restarting the kiosk.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from datetime import UTC, datetime
from functools import reduce
from operator import xor

import serial

from . import cardnumber
from .base import Backoff, CardTap, Presence, Reader, ReaderError

log = logging.getLogger(__name__)

PROTOCOLS = ("rdm6300", "line")
STX, ETX = 0x02, 0x03
FRAME_SIZE = 14  # STX, 10 hex digits of ID, 2 hex digits of checksum, ETX
_HEX_DIGITS = frozenset(b"0123456789ABCDEFabcdef")
# pyserial waits this long for the first byte of a read, which bounds how late close() and a
# read timeout are noticed.
POLL = 0.05


class FrameParser:
    """RDM6300/EM4100 frames out of a byte stream: 0x02, 10 ASCII hex digits (version byte and
    4 data bytes), 2 ASCII hex digits of their XOR, 0x03.

    ``feed`` takes whatever bytes arrived and returns the IDs of the complete, valid frames in
    them, as 10 upper-case hex digits. Bytes that are not part of a frame are skipped and a
    frame whose checksum fails is dropped (``skipped`` and ``bad_checksums`` count them), so
    noise on the line or a reader starting mid-frame never costs more than that frame.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.skipped = 0
        self.bad_checksums = 0

    def feed(self, data: bytes) -> list[str]:
        buffer = self._buffer
        buffer += data
        ids: list[str] = []
        while True:
            start = buffer.find(STX)
            if start < 0:
                self.skipped += len(buffer)
                buffer.clear()
                return ids
            if start:
                self.skipped += start
                del buffer[:start]
            if len(buffer) < FRAME_SIZE:
                return ids
            frame = bytes(buffer[:FRAME_SIZE])
            if frame[-1] != ETX or not _HEX_DIGITS.issuperset(frame[1:13]):
                # That STX was noise: resynchronise on the next one, which may lie inside this window.
                self.skipped += 1
                del buffer[:1]
                continue
            del buffer[:FRAME_SIZE]
            card = bytes.fromhex(frame[1:11].decode("ascii"))
            if reduce(xor, card) != int(frame[11:13], 16):
                self.bad_checksums += 1
                log.debug("frame %r refused: bad checksum", frame)
                continue
            ids.append(card.hex().upper())


class LineParser:
    """One card number per line; lines end with CR, LF or CRLF. Returns the non-empty lines."""

    MAX_LINE = 64  # far longer than any card number: a line past it is noise, not a number

    def __init__(self) -> None:
        self._line = bytearray()
        self._overlong = False

    def feed(self, data: bytes) -> list[str]:
        lines: list[str] = []
        for byte in data:
            if byte in b"\r\n":
                if self._line and not self._overlong:
                    lines.append(self._line.decode("ascii", "replace").strip())
                self._line.clear()
                self._overlong = False
            elif len(self._line) >= self.MAX_LINE:
                self._overlong = True
            else:
                self._line.append(byte)
        return [line for line in lines if line]


class SerialReader(Reader):
    def __init__(
        self,
        port: str,
        spec: str | None = None,
        *,
        protocol: str = "rdm6300",
        baud: int = 9600,
        card_format: str = "hex",
        version_byte: str = "keep",
        release_after: float = 0.5,
        backoff: Backoff | None = None,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ReaderError("hardware.protocol", protocols=", ".join(PROTOCOLS), given=protocol)
        if not isinstance(baud, int) or baud <= 0:
            raise ReaderError("hardware.baud", given=baud)
        if card_format not in cardnumber.FORMATS:
            raise ReaderError("hardware.card_format", formats=", ".join(cardnumber.FORMATS), given=card_format)
        if version_byte not in ("keep", "drop"):
            raise ReaderError("hardware.version_byte", given=version_byte)
        if protocol == "rdm6300" and card_format != "hex":
            raise ReaderError("hardware.format_line_only")
        if protocol == "rdm6300":
            # The number printed on an EM4100 card leaves out the version byte; a roster imported
            # from those numbers (--card-format decimal) matches taps only with the byte dropped.
            card_format = "em4100"
        self.version_byte = version_byte
        self.spec = spec or f"serial:{port}?protocol={protocol}"
        self.port = port
        self.protocol = protocol
        self.baud = baud
        self.card_format = card_format
        self._parser = FrameParser() if protocol == "rdm6300" else LineParser()
        self._presence = Presence(release_after)
        self._pending: deque[CardTap] = deque()
        self._backoff = backoff or Backoff()
        self._retry_at = 0.0
        self._closed = threading.Event()
        # Held while a read uses the port; whoever finds it free after close() closes the port.
        self._busy = threading.Lock()
        try:
            self.device: serial.SerialBase | None = self._open()
        except (serial.SerialException, OSError, ValueError) as error:
            raise ReaderError("hardware.cannot_open_serial", port=port, spec=self.spec, problem=str(error)) from error

    def _open(self) -> serial.SerialBase:
        return serial.serial_for_url(self.port, baudrate=self.baud, timeout=POLL)

    def read(self, timeout: float | None = None) -> CardTap | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._busy.acquire(timeout=-1 if timeout is None else timeout):
            return None  # another thread is reading
        try:
            while not self._closed.is_set():
                if self._pending:
                    return self._pending.popleft()
                if self.device is None:
                    self._reopen()
                if self.device is not None:
                    self._receive()
                else:
                    self._closed.wait(self._pause(deadline))
                if deadline is not None and time.monotonic() >= deadline and not self._pending:
                    return None
            return None
        finally:
            self._busy.release()
            if self._closed.is_set():
                self._release_device()

    def close(self) -> None:
        self._closed.set()
        self._release_device()
        self._set_state("closed")

    def _pause(self, deadline: float | None) -> float:
        until = self._retry_at if deadline is None else min(self._retry_at, deadline)
        return max(0.0, min(until - time.monotonic(), 1.0))

    def _receive(self) -> None:
        try:
            data = self.device.read(self.device.in_waiting or 1)
        except (serial.SerialException, OSError) as error:
            self._lost(error)
            return
        now = time.monotonic()
        for text in self._parser.feed(data):
            try:
                uid = cardnumber.parse(text, self.card_format)
            except ValueError as error:
                log.warning("%s: ignoring %r: %s", self.spec, text, error)
                continue
            if self.card_format == "em4100" and self.version_byte == "drop":
                uid = uid[2:]
            if self._presence.is_new(uid, now):
                tech = "em4100" if self.protocol == "rdm6300" else "serial"
                self._pending.append(CardTap(uid=uid, tech=tech, reader=self.spec, read_at=datetime.now(UTC)))

    def _lost(self, error: BaseException) -> None:
        self._drop_device()
        self._retry_at = time.monotonic() + self._backoff.next()
        self._set_state(f"reconnecting: {error}")

    def _reopen(self) -> None:
        if time.monotonic() < self._retry_at:
            return
        try:
            self.device = self._open()
        except (serial.SerialException, OSError, ValueError) as error:
            self._retry_at = time.monotonic() + self._backoff.next()
            self._set_state(f"reconnecting: {error}")
            return
        # A frame cut off by the unplug must not be completed by bytes from the new port.
        self._parser = FrameParser() if self.protocol == "rdm6300" else LineParser()
        self._backoff.reset()
        self._set_state("ok")

    def _drop_device(self) -> None:
        device, self.device = self.device, None
        if device is not None:
            try:
                device.close()
            except (serial.SerialException, OSError) as error:
                log.debug("%s: error while closing: %s", self.spec, error)

    def _release_device(self) -> None:
        if not self._busy.acquire(blocking=False):
            return
        try:
            self._drop_device()
        finally:
            self._busy.release()
