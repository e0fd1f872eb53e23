"""A reader with no hardware behind it, for the demo and for tests.

Taps are queued with ``present`` (or ``feed`` from a line-based text stream, one
``UID [TECH]`` per line) and handed out by ``read`` in order. ``read_at`` is the time the
tap was read, not the time it was queued, just as a real reader stamps a card when it sees it.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterable
from datetime import UTC, datetime

from .base import CardTap, Reader, ReaderError, canonical_uid

log = logging.getLogger(__name__)


class SimulatedReader(Reader):
    def __init__(self, spec: str = "sim", *, clock=None) -> None:
        self.spec = spec
        self.clock = clock or (lambda: datetime.now(UTC))  # tests stamp taps with their own clock
        self._taps: deque[tuple[str, str]] = deque()
        self._changed = threading.Condition()
        self._closed = False

    def present(self, uid: str, tech: str = "sim") -> None:
        uid = canonical_uid(uid)
        with self._changed:
            if self._closed:
                raise ReaderError("hardware.closed", spec=self.spec)
            self._taps.append((uid, tech))
            self._changed.notify()

    def feed(self, lines: Iterable[str]) -> int:
        """Queue one tap per ``UID [TECH]`` line; returns how many were queued.

        Blank lines and ``#`` comments are skipped, and so are bad UIDs (with a warning), so a
        typo at a demo keyboard does not end the feed. Stops when the reader is closed.
        """
        queued = 0
        for line in lines:
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            try:
                self.present(*words[:2])
            except ValueError as error:
                log.warning("%s: ignoring line %r: %s", self.spec, line.rstrip("\n"), error)
                continue
            except ReaderError:
                break
            queued += 1
        return queued

    def read(self, timeout: float | None = None) -> CardTap | None:
        with self._changed:
            self._changed.wait_for(lambda: self._taps or self._closed, timeout)
            if self._closed or not self._taps:
                return None
            uid, tech = self._taps.popleft()
        return CardTap(uid=uid, tech=tech, reader=self.spec, read_at=self.clock())

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._taps.clear()
            self._changed.notify_all()
        self._set_state("closed")
