"""What the console's workers tell the app: each a dataclass naming what happened.

Workers run off the UI thread (the reader's loop, the status watcher); they never touch a widget,
they post one of these and the app reacts in an ``@on(...)`` handler on its own thread.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from kiosk.display import Shown, SyncState
from kiosk.engine import Counts


@dataclass
class CardDecided(Message):
    """A tap was decided and its event recorded (before anything is shown)."""

    shown: Shown


@dataclass
class AlertsRaised(Message):
    """Alerts fell due and were recorded (absent, late pickup, offline, …), oldest first."""

    raised: tuple[Shown, ...]


@dataclass
class ReaderFailed(Message):
    """The card reader stopped reading: ``reason`` says why, in the kiosk's language where the
    reader's error is in the catalogue, else as the driver gave it."""

    reason: str


@dataclass
class ReaderRestored(Message):
    """The card reader reads again."""


@dataclass
class SyncStateChanged(Message):
    """Online or offline, the outbox's depth, the roster's version or age changed."""

    sync: SyncState


@dataclass
class CountsChanged(Message):
    """Expected / on site / gone / absent changed (a tap at this gate, or the clock passed a grace time)."""

    counts: Counts
