from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from hardware import CardTap, Reader


@pytest.fixture
def udp_port() -> int:
    """A UDP port nothing listens on, for one reader and one card to share as their radio."""
    # nfcpy's card side binds 0.0.0.0:PORT, so probe the same address.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("0.0.0.0", 0))
        return sock.getsockname()[1]


class TapCollector:
    """Reads taps from a reader in a background thread until stopped."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self.taps: list[CardTap] = []
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="tap-collector", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while (tap := self.reader.read()) is not None:
                self.taps.append(tap)
        except BaseException as error:  # handed to the test in stop()
            self.error = error

    def stop(self) -> list[CardTap]:
        self.reader.close()
        self._thread.join(timeout=3)
        assert not self._thread.is_alive(), "read() did not return after close()"
        if self.error is not None:
            raise self.error
        return self.taps

    @property
    def uids(self) -> list[str]:
        return [tap.uid for tap in self.taps]

    def until_marker(self, card, marker: str = "0F0E0D0C", tech: str = "106A") -> list[CardTap]:
        """Present a marker card after the taps under test, wait until it is read, stop, and return
        the taps before it. The reader reads one card after another, so a tap it were to count late
        would come before the marker: this waits for "nothing more arrives" without a sleep."""
        card.present(marker, tech=tech)
        assert wait_until(lambda: marker in self.uids, 5), f"the marker card {marker} was never read"
        taps = self.stop()
        assert taps[-1].uid == marker, [t.uid for t in taps]
        return taps[:-1]


@pytest.fixture
def collect() -> Iterator[type[TapCollector]]:
    started: list[TapCollector] = []

    def start(reader: Reader) -> TapCollector:
        collector = TapCollector(reader)
        started.append(collector)
        return collector

    yield start
    for collector in started:
        collector.reader.close()


class Pty:
    """A pseudo-terminal: what a reader writes goes in at ``master``, a driver opens ``path``."""

    def __init__(self) -> None:
        self.master, self._slave = os.openpty()
        self.path = os.ttyname(self._slave)

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        """Like unplugging the reader: the driver's next read of ``path`` fails."""
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass  # closed already


@pytest.fixture
def pty() -> Iterator[Callable[[], Pty]]:
    made: list[Pty] = []

    def make() -> Pty:
        made.append(Pty())
        return made[-1]

    yield make
    for one in made:
        one.close()


def wait_until(condition: Callable[[], object], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
