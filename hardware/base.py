"""The one small interface every card reader family implements."""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import TextIO

from i18n import LocalizedError

log = logging.getLogger(__name__)


class ReaderError(LocalizedError):
    """A reader could not be opened or failed while reading (the driver's own errors, turned into one).

    Its text comes from the catalogue (``hardware.*`` keys): ``str()`` is zh_CN, ``.text("en")`` English.
    """


@dataclass(frozen=True, slots=True)
class CardTap:
    """One card seen by one reader.

    ``uid`` is canonical: upper-case hex of the UID bytes in the order the card sends them
    (only a reader configured for Wiegand-26 numbers gives the 3 bytes such a number carries;
    see ``hardware.cardnumber``). ``tech`` names the card technology (``iso14443a``,
    ``iso14443b``, ``felica``, ``em4100``, ``keyboard``, ``serial``, ``sim``). ``read_at`` is
    timezone-aware UTC.
    """

    uid: str
    tech: str
    reader: str
    read_at: datetime


_HEX = re.compile(r"(?:[0-9A-F]{2})+")


def canonical_uid(text: str, min_bytes: int = 4, max_bytes: int = 10) -> str:
    """Turn a UID typed by a person or written in a file into the canonical form.

    Args:
        text: hex digits in either case; whitespace and ``:`` are ignored, so
            ``04:a1:b2:c3`` and ``04 A1 B2 C3`` are accepted.
        min_bytes: fewest UID bytes accepted.
        max_bytes: most UID bytes accepted.

    Returns:
        The UID as upper-case hex, e.g. ``04A1B2C3``.

    Raises:
        ValueError: not an even number of hex digits, or too few or too many bytes.
    """
    uid = re.sub(r"[\s:]", "", text).upper()
    if not _HEX.fullmatch(uid):
        raise ValueError(f"card UID must be an even number of hex digits, got {text!r}")
    if not min_bytes <= len(uid) // 2 <= max_bytes:
        raise ValueError(
            f"card UID must be {min_bytes} to {max_bytes} bytes, got {len(uid) // 2} in {text!r}"
        )
    return uid


@dataclass(frozen=True, slots=True)
class Pattern:
    """How a reader signals one outcome: ``count`` beeps (or LED blinks) of ``on`` seconds,
    ``off`` seconds apart, in ``colour`` where the reader has LEDs."""

    count: int
    on: float
    off: float
    colour: str


# Distinct by count and length, so a guard hears the outcome without looking at the screen.
PATTERNS: dict[str, Pattern] = {
    "allowed": Pattern(1, 0.1, 0.1, "green"),
    "attention": Pattern(2, 0.1, 0.1, "amber"),
    "refused": Pattern(3, 0.3, 0.1, "red"),
}
SILENT_TONES = ("ignored",)


def pattern_for(tone: str) -> Pattern | None:
    """The pattern of ``tone``; None for a tone that makes no sound; ValueError for an unknown one."""
    if tone in SILENT_TONES:
        return None
    try:
        return PATTERNS[tone]
    except KeyError:
        valid = ", ".join([*PATTERNS, *SILENT_TONES])
        raise ValueError(f"unknown tone {tone!r}; use one of: {valid}") from None


class TerminalBell:
    """Plays patterns as BEL characters on a terminal, in the background.

    A terminal bell has no length or colour, so only the count and spacing of a pattern are
    heard. With no stream, the process's stderr is used when it is a terminal; a bell written
    into a log file would only be noise, so otherwise nothing is played.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        if stream is None and sys.stderr is not None and sys.stderr.isatty():
            stream = sys.stderr
        self.stream = stream
        self._playing = threading.Lock()  # one pattern at a time, never interleaved

    def play(self, pattern: Pattern) -> threading.Thread | None:
        if self.stream is None:
            return None
        thread = threading.Thread(target=self._play, args=(pattern,), name="bell", daemon=True)
        thread.start()
        return thread

    def _play(self, pattern: Pattern) -> None:
        with self._playing:
            for n in range(pattern.count):
                try:
                    self.stream.write("\a")
                    self.stream.flush()
                except (OSError, ValueError) as error:  # the terminal went away or was closed
                    log.debug("bell not played: %s", error)
                    return
                if n + 1 < pattern.count:
                    time.sleep(pattern.on + pattern.off)


class Backoff:
    """Delays between attempts to reopen a device: ``first``, doubling up to ``most`` seconds."""

    def __init__(self, first: float = 0.2, most: float = 5.0) -> None:
        self.first, self.most = first, most
        self._next = first

    def next(self) -> float:
        delay, self._next = self._next, min(self._next * 2, self.most)
        return delay

    def reset(self) -> None:
        self._next = self.first


class Presence:
    """Counts a card held on a reader once: a card seen again within ``release_after`` seconds
    of its last sighting is the same presentation (readers repeat a held card many times a
    second, and a card at the edge of the field drops out of single reads)."""

    def __init__(self, release_after: float = 0.5) -> None:
        self.release_after = release_after
        self._uid: str | None = None
        self._seen_at = 0.0

    def is_new(self, uid: str, now: float) -> bool:
        new = uid != self._uid or now - self._seen_at >= self.release_after
        self._uid, self._seen_at = uid, now
        return new


class Reader(ABC):
    """A card reader chosen by a path string, like ``nfc.clf.device.connect(path)``.

    A reader is opened once and then polled: ``read`` blocks until a card is presented, the
    timeout passes, or ``close`` is called from another thread. A reader whose device fails
    or vanishes after it was opened reopens it by itself, with backoff, and says so in
    ``state`` meanwhile.
    """

    #: the spec string the reader was opened with, e.g. ``nfc:udp:localhost:54321``
    spec: str
    _state: str = "ok"
    _bell: TerminalBell | None = None

    @property
    def state(self) -> str:
        """What the reader is doing, for a status line: ``ok``, ``reconnecting: <reason>`` or
        ``closed``; the word before the first colon is one of those three."""
        return self._state

    def _set_state(self, state: str) -> None:
        if state != self._state:
            level = logging.INFO if state == "ok" or state == "closed" else logging.WARNING
            log.log(level, "%s: %s", self.spec, state)
        self._state = state

    @property
    def bell(self) -> TerminalBell:
        """Where ``signal`` plays on readers with no buzzer of their own."""
        if self._bell is None:
            self._bell = TerminalBell()
        return self._bell

    @bell.setter
    def bell(self, bell: TerminalBell) -> None:
        self._bell = bell

    def signal(self, tone: str) -> None:
        """Tell the person at the reader how their tap was decided, without blocking.

        Args:
            tone: the decision's tone: ``allowed``, ``attention`` or ``refused`` (``PATTERNS``
                gives each its pattern); ``ignored`` plays nothing.

        Raises:
            ValueError: an unknown tone.

        Readers with a buzzer or LEDs (the ACR122U) use them; the others ring the terminal bell.
        """
        pattern = pattern_for(tone)
        if pattern is not None:
            self.bell.play(pattern)

    @abstractmethod
    def read(self, timeout: float | None = None) -> CardTap | None:
        """Wait for the next tap.

        Args:
            timeout: seconds to wait; None waits until a card is presented or the reader is closed.

        Returns:
            The tap, or None when the timeout passed or the reader was closed.

        Raises:
            ReaderError: a failure reopening cannot mend, such as a device that cannot sense
                the configured card types. A device that fails or vanishes is reopened
                instead (see ``state``).
        """

    @abstractmethod
    def close(self) -> None:
        """Release the device; a ``read`` blocked in another thread returns None soon after."""

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
