"""The one small interface every card reader family implements."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime


class ReaderError(Exception):
    """A reader could not be opened or failed while reading (the driver's own errors, turned into one)."""


@dataclass(frozen=True, slots=True)
class CardTap:
    """One card seen by one reader.

    ``uid`` is canonical: upper-case hex of the UID bytes in the order the card sends them.
    ``tech`` names the card technology (``iso14443a``, ``iso14443b``, ``felica``, ``em4100``,
    ``keyboard``, ``sim``). ``read_at`` is timezone-aware UTC.
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


class Reader(ABC):
    """A card reader chosen by a path string, like ``nfc.clf.device.connect(path)``.

    A reader is opened once and then polled: ``read`` blocks until a card is presented, the
    timeout passes, or ``close`` is called from another thread.
    """

    #: the spec string the reader was opened with, e.g. ``nfc:udp:localhost:54321``
    spec: str

    @abstractmethod
    def read(self, timeout: float | None = None) -> CardTap | None:
        """Wait for the next tap.

        Args:
            timeout: seconds to wait; None waits until a card is presented or the reader is closed.

        Returns:
            The tap, or None when the timeout passed or the reader was closed.

        Raises:
            ReaderError: the device failed or vanished.
        """

    @abstractmethod
    def close(self) -> None:
        """Release the device; a ``read`` blocked in another thread returns None soon after."""

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
