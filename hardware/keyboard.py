"""Keyboard-wedge readers: USB readers that type the card number followed by Enter.

Such a reader types a whole number within a few tens of milliseconds; a person typing digits
takes a tenth of a second or more per key. ``BurstDetector`` tells the two apart from the
characters and their arrival times alone, so it works on any source of keystrokes (a terminal
here, a UI's key events elsewhere). ``KeyboardReader`` feeds it from a terminal: standard input
or a terminal device path, switched to unbuffered, unechoed input while the reader is open.
"""

from __future__ import annotations

import codecs
import logging
import os
import select
import string
import sys
import termios
import threading
import time
from collections import deque
from datetime import UTC, datetime

from i18n import Msg

from . import cardnumber
from .base import Backoff, CardTap, Reader, ReaderError

log = logging.getLogger(__name__)

# Characters each card format is typed with.
ALPHABETS = {
    "hex": string.hexdigits,
    "em4100": string.hexdigits,
    "decimal": string.digits,
    "decimal-reversed": string.digits,
    "wiegand26": string.digits + ",",
    "wiegand34": string.digits + ",",
}
# Shortest and longest number each format is typed as; a reader types a fixed width, so a
# shorter burst is a person's keys or a fragment.
LENGTHS = {
    "hex": (8, 20),
    "em4100": (10, 10),
    "decimal": (6, 10),
    "decimal-reversed": (6, 10),
    "wiegand26": (5, 9),
    "wiegand34": (5, 11),
}
ENTER = "\r\n"


class BurstDetector:
    """Finds card numbers typed by a reader in a stream of keystrokes; pure logic, no clock.

    ``feed(char, t)`` takes one character and the time it arrived (seconds, any monotonic
    origin) and returns the number when ``char`` is the Enter that ends a burst: at least
    ``min_length`` and at most ``max_length`` characters of ``alphabet``, each, and the Enter,
    arriving within ``max_gap`` seconds of the one before. Anything slower is a person at the
    keyboard and is dropped, as is a burst broken by a character outside the alphabet.
    """

    def __init__(
        self, *, max_gap: float = 0.05, min_length: int = 4, max_length: int = 20, alphabet: str = string.digits
    ) -> None:
        if max_gap <= 0 or not 0 < min_length <= max_length:
            raise ValueError("max_gap must be positive and 0 < min_length <= max_length")
        self.max_gap = max_gap
        self.min_length = min_length
        self.max_length = max_length
        self.alphabet = frozenset(alphabet)
        self._chars: list[str] = []
        self._broken = False  # a character outside the alphabet spoilt the current burst
        self._last: float | None = None

    def feed(self, char: str, t: float) -> str | None:
        in_time = self._last is not None and t - self._last <= self.max_gap
        self._last = t
        if char in ENTER:
            burst, broken = "".join(self._chars), self._broken
            self._chars, self._broken = [], False
            if in_time and not broken and self.min_length <= len(burst) <= self.max_length:
                return burst
            if burst:
                log.debug("not a card: %r typed too slowly, broken or of the wrong length", burst)
            return None
        if not in_time:
            # a pause: whatever came before was typed by a person, or is a fragment
            self._chars, self._broken = [], False
        if char in self.alphabet:
            self._chars.append(char)
        else:
            self._broken = True
        return None

    def reset(self) -> None:
        self._chars, self._broken, self._last = [], False, None


class KeyboardReader(Reader):
    """Reads keystrokes from standard input or a terminal device in a thread of its own, so
    that each keystroke is timed when it arrives, not when someone next calls ``read``."""

    def __init__(
        self,
        path: str | None = None,
        spec: str | None = None,
        *,
        card_format: str = "decimal",
        max_gap: float = 0.05,
        backoff: Backoff | None = None,
    ) -> None:
        if card_format not in cardnumber.FORMATS:
            raise ReaderError("hardware.card_format", formats=", ".join(cardnumber.FORMATS), given=card_format)
        if max_gap <= 0:
            raise ReaderError("hardware.gap", given=max_gap)
        self.spec = spec or ("keyboard" if path is None else f"keyboard:{path}")
        self.path = path
        self.card_format = card_format
        shortest, longest = LENGTHS[card_format]
        self.detector = BurstDetector(
            max_gap=max_gap, min_length=shortest, max_length=longest, alphabet=ALPHABETS[card_format]
        )
        self._taps: deque[CardTap] = deque()
        self._changed = threading.Condition()
        self._backoff = backoff or Backoff()
        self._closed = threading.Event()
        self._fd: int | None = None
        self._saved: list | None = None
        try:
            self._open()
        except OSError as error:
            raise ReaderError(
                "hardware.cannot_open_keyboard", device=path or Msg("hardware.stdin"), spec=self.spec, problem=str(error)
            ) from error
        self._thread = threading.Thread(target=self._run, name=f"keyboard-reader {self.spec}", daemon=True)
        self._thread.start()

    def read(self, timeout: float | None = None) -> CardTap | None:
        with self._changed:
            self._changed.wait_for(lambda: self._taps or self._closed.is_set(), timeout)
            if self._closed.is_set() or not self._taps:
                return None
            return self._taps.popleft()

    def close(self) -> None:
        self._closed.set()
        with self._changed:
            self._changed.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)
        self._set_state("closed")

    def _open(self) -> None:
        if self.path is None:
            if sys.stdin is None:
                raise OSError("there is no standard input")
            fd = sys.stdin.fileno()
        else:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOCTTY)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        if os.isatty(fd):
            try:
                saved = termios.tcgetattr(fd)
                raw = termios.tcgetattr(fd)
                # Keystrokes must arrive one by one as they are typed (a line-buffered terminal
                # hands over the whole line at Enter and hides the timing), and a card number
                # echoed onto the screen would only confuse the guard.
                raw[3] &= ~(termios.ICANON | termios.ECHO)
                raw[6][termios.VMIN], raw[6][termios.VTIME] = 1, 0
                termios.tcsetattr(fd, termios.TCSANOW, raw)
            except termios.error as error:
                if self.path is not None:
                    os.close(fd)
                raise OSError(f"cannot set up the terminal: {error}") from error
            self._saved = saved
        self._fd = fd
        self.detector.reset()

    def _run(self) -> None:
        try:
            while not self._closed.is_set():
                if self._fd is not None:
                    self._receive()
                elif self.path is None:
                    return  # standard input ended; it does not come back
                elif not self._closed.wait(self._backoff.next()):
                    self._reopen()
        finally:
            self._drop_device()

    def _receive(self) -> None:
        try:
            if not select.select([self._fd], [], [], 0.1)[0]:
                return
            data = os.read(self._fd, 256)
        except OSError as error:  # EIO: the terminal is gone
            self._lost(error)
            return
        if not data:
            self._lost(EOFError("end of input"))
            return
        now = time.monotonic()
        # Characters read together arrived together: one timestamp for all is what they are.
        for char in self._decoder.decode(data):
            number = self.detector.feed(char, now)
            if number is None:
                continue
            try:
                uid = cardnumber.parse(number, self.card_format)
            except ValueError as error:
                log.warning("%s: ignoring %r: %s", self.spec, number, error)
                continue
            with self._changed:
                self._taps.append(CardTap(uid=uid, tech="keyboard", reader=self.spec, read_at=datetime.now(UTC)))
                self._changed.notify()

    def _lost(self, error: BaseException) -> None:
        self._drop_device()
        if self.path is None:
            self._set_state(f"closed: {error}")
        else:
            self._set_state(f"reconnecting: {error}")

    def _reopen(self) -> None:
        try:
            self._open()
        except OSError as error:
            self._set_state(f"reconnecting: {error}")
            return
        self._backoff.reset()
        self._set_state("ok")

    def _drop_device(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if self._saved is not None:
            try:
                termios.tcsetattr(fd, termios.TCSANOW, self._saved)
            except termios.error:
                pass  # the terminal is gone; there is nothing left to restore
            self._saved = None
        if self.path is not None:
            try:
                os.close(fd)
            except OSError:
                pass  # already gone with its terminal
