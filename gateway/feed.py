"""The kiosk side of the school's feed: what the other gates saw, in central's order, verified and handed on.

Central places every event it stores in its school's feed (``pos`` 1, 2, …) and publishes it on
``{prefix}/{school}/feed`` signed with its key; a gate that was away asks central over signed HTTP for
what follows its last place (``GET /api/v1/kiosks/{school}/{kiosk}/feed?after=N``). ``FeedFollower``
does both for one kiosk, on a thread of its own: paho's network thread only queues the payload (the
kiosk's store is SQLite, and no SQLite write runs on paho's thread).

States (``FeedFollower.state``):

    offline ──connect──► catching_up ──reached the head──► current
       ▲                     ▲   │                           │
       └──── disconnect ─────┴───┴──── a gap (first pos > last + 1, or last < head) ──┘

Only ``current`` means the gate's counts include every other gate's events; ``unknown_since`` is
when it last was (shown with a "not on site" refusal while offline).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import quote

import httpx

from gateway import protocol
from gateway.photos import signed_headers

log = logging.getLogger(__name__)

#: events asked for in one catch-up request (central's own limit per feed message)
PAGE = 500
FAULT_EVERY = 1.0  # seconds: at most one fault row a second under a flood of forged messages
RETRY_EVERY = 5.0  # seconds between catch-up attempts while central cannot be reached
OFFLINE, CATCHING_UP, CURRENT = "offline", "catching_up", "current"


class FeedError(Exception):
    """The feed could not be read from central (unreachable, refused, or an answer that did not verify)."""


class FeedSink(Protocol):
    """What the follower needs of the kiosk: its last contiguous place, and where the events go."""

    @property
    def feed_pos(self) -> int: ...
    def apply_feed(self, events: list[protocol.FeedEvent], *, over_gaps: bool = False) -> None:
        """Keep and fold the events (each once by id) and move the last place on over contiguous places
        (``over_gaps``: to the last event's place whatever was missed)."""


def parse_feed(payload: bytes, key) -> protocol.Feed:
    """A feed message or catch-up answer, once central's signature verifies it (ProtocolError if not)."""
    protocol.unseal(payload, key)
    return protocol.parse_message(protocol.Feed, payload)


class FeedFetcher:
    """Reads the school's feed after a place from central over HTTP, signed with the kiosk's secret."""

    def __init__(
        self, base_url: str, *, school: str, kiosk: str, secret: str, central_key, timeout: float = 10.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.school = school
        self.path = f"/api/v1/kiosks/{quote(school, safe='')}/{quote(kiosk, safe='')}/feed"
        self.secret, self.key = secret, central_key
        self.client = client or httpx.Client(base_url=base_url, timeout=timeout)

    def after(self, pos: int, limit: int = PAGE) -> protocol.Feed:
        query = f"after={pos}&limit={limit}"
        try:
            got = self.client.get(f"{self.path}?{query}",
                                  headers=signed_headers(self.secret, method="GET", path=self.path, query=query))
            got.raise_for_status()
        except httpx.HTTPError as exc:
            raise FeedError(f"central did not give the feed after {pos}: {exc}") from exc
        try:
            feed = parse_feed(got.content, self.key)
        except protocol.ProtocolError as exc:
            raise FeedError(f"central's feed answer after {pos} refused: {exc}") from exc
        if feed.school != self.school:
            raise FeedError(f"central's feed answer is for school {feed.school!r}, not {self.school!r}")
        return feed

    def close(self) -> None:
        self.client.close()


class FeedFollower:
    """Follows one school's feed for one kiosk: verifies each message, finds gaps, catches up.

    ``offer`` (paho's thread) only queues; the worker thread verifies, catches up over HTTP when a
    message does not follow the last place, and hands the events to ``sink.apply_feed`` in order.
    Without a ``fetcher`` (no central URL) a gap cannot be filled: it is logged and the feed followed on.
    """

    def __init__(
        self, sink: FeedSink, *, school: str, central_key, fetcher: FeedFetcher | None = None,
        clock: Callable[[], datetime] | None = None, on_change: Callable[[], None] | None = None,
        retry_every: float = RETRY_EVERY, on_refused: Callable[[str], None] | None = None,
    ) -> None:
        self.sink, self.school, self.key, self.fetcher = sink, school, central_key, fetcher
        self.clock = clock or (lambda: datetime.now(UTC))
        self.on_change = on_change
        self.retry_every = retry_every
        #: records a refused message's reason (the kiosk's fault table), at most once a second
        self.on_refused = on_refused
        self._last_fault = float("-inf")
        self.state = OFFLINE
        #: when the other gates were last known (None while current): a refusal offline says so
        self.unknown_since: datetime | None = self.clock()
        #: feed messages refused since start (a forged or malformed one)
        self.refused = 0
        self._queue: queue.Queue[tuple[str, bytes | None]] = queue.Queue()
        self._connected = False
        # One more catch-up a little after each connect: the subscription may have become active
        # only after the first catch-up read central, and a message placed in between was never heard.
        self._recheck = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- from the sync client (paho's thread): queue only --------------------------------------

    def connected(self) -> None:
        self._connected = True
        self._recheck = True
        self._queue.put(("catch_up", None))

    def disconnected(self) -> None:
        self._connected = False
        self._queue.put(("offline", None))

    def offer(self, payload: bytes) -> None:
        self._queue.put(("message", payload))

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> FeedFollower:
        self._thread = threading.Thread(target=self._run, name="feed", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._queue.put(("stop", None))
        if self._thread:
            self._thread.join(5)
        if self.fetcher:
            self.fetcher.close()

    @property
    def current(self) -> bool:
        return self.state == CURRENT

    # --- the worker -------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                what, payload = self._queue.get(timeout=self.retry_every)
            except queue.Empty:
                what, payload = ("retry", None)
            try:
                if what == "stop":
                    return
                if what == "offline":
                    self._set(OFFLINE)
                elif what == "catch_up" or (what == "retry" and self._connected and self.state == CATCHING_UP):
                    self.catch_up()
                elif what == "retry" and self._connected and self._recheck:
                    self._recheck = False
                    self.catch_up(quiet=True)
                elif what == "message" and payload is not None:
                    self.receive(payload)
            except Exception:  # noqa: BLE001 - the feed never stops the kiosk; a catch-up follows
                log.exception("the school feed step %s failed", what)

    def receive(self, payload: bytes) -> None:
        """One message from ``{school}/feed``: verified, then applied, or a catch-up first if it leaves a gap."""
        try:
            feed = parse_feed(payload, self.key)
            if feed.school != self.school:
                raise protocol.ProtocolError(f"the feed message is for school {feed.school!r}, not {self.school!r}")
        except protocol.ProtocolError as exc:
            self.refused += 1
            log.warning("refused a school feed message: %s", exc)
            now = time.monotonic()
            if self.on_refused and now - self._last_fault >= FAULT_EVERY:
                self._last_fault = now
                self.on_refused(str(exc))  # on this thread, never paho's: it writes the kiosk's store
            return
        last = self.sink.feed_pos
        if feed.events and feed.events[0].pos > last + 1:
            if self.fetcher is None:
                log.warning("school feed gap: have up to %d, message starts at %d, and no central URL to fill it from",
                            last, feed.events[0].pos)
                self.sink.apply_feed(list(feed.events), over_gaps=True)
                return
            log.info("school feed gap: have up to %d, message starts at %d: catching up", last, feed.events[0].pos)
            self.catch_up()
            return  # what the message carried came with the catch-up (or comes with the next one)
        self.sink.apply_feed(list(feed.events))
        if self.sink.feed_pos < feed.head and self.fetcher is not None:
            # Another batch placed before this one was not heard (two ingest workers, a lost message).
            self.catch_up()
        elif self._connected and self.state != CURRENT and (self.fetcher is None or self.sink.feed_pos >= feed.head):
            # Everything up to the head as central sent this message: current, whether or not the
            # catch-up on connecting got through.
            self._set(CURRENT)

    def catch_up(self, *, quiet: bool = False) -> None:
        """Read the feed after the last place, page by page, until the head; ``current`` once there.
        ``quiet``: a check while current, which says "catching up" only if there was something to read."""
        if not self._connected:
            return
        if self.fetcher is None:
            log.warning("no central URL: the school feed's gaps cannot be filled (other gates' events may be missing)")
            self._set(CURRENT)
            return
        if not quiet:
            self._set(CATCHING_UP)
        while not self._stop.is_set() and self._connected:
            last = self.sink.feed_pos
            try:
                page = self.fetcher.after(last, PAGE)
            except FeedError as exc:
                log.warning("school feed catch-up after %d failed (retrying in %.0fs): %s", last, self.retry_every, exc)
                return
            if page.events:
                self._set(CATCHING_UP)
                self.sink.apply_feed(list(page.events))
            if self.sink.feed_pos >= page.head:
                self._set(CURRENT)
                return
            if self.sink.feed_pos == last:
                # Nothing moved us on although the head is further (a place central skipped?): try again later.
                log.warning("school feed catch-up stuck at %d below head %d", last, page.head)
                return

    def _set(self, state: str) -> None:
        if state == self.state:
            return
        self.state = state
        if state == CURRENT:
            self.unknown_since = None
            log.info("school feed current at %d", self.sink.feed_pos)
        elif self.unknown_since is None:
            self.unknown_since = self.clock()
        if self.on_change:
            self.on_change()
