"""What the open live pages wait on: a school's roster may have changed (a gate's event stored, an absence
excused). The domain events arrive in the committing thread (the ingest's, a request's); each waiting page
is an ``asyncio.Event`` in the server's loop, set from there thread-safely."""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict

from central.core.events import AbsenceExcused, DomainEvents, FeedAdvanced


class Hub:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[int, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = defaultdict(set)

    def attach(self, events: DomainEvents) -> Hub:
        events.subscribe(FeedAdvanced, lambda e: self.changed(e.school_id))
        events.subscribe(AbsenceExcused, lambda e: self.changed(e.school_id))
        return self

    def watch(self, school_id: int) -> tuple[asyncio.AbstractEventLoop, asyncio.Event]:
        """Called in the page's loop: an event set whenever ``school_id``'s roster may have changed."""
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiting[school_id].add(entry)
        return entry

    def forget(self, school_id: int, entry: tuple[asyncio.AbstractEventLoop, asyncio.Event]) -> None:
        with self._lock:
            self._waiting[school_id].discard(entry)
            if not self._waiting[school_id]:
                del self._waiting[school_id]

    def watching(self, school_id: int) -> int:
        with self._lock:
            return len(self._waiting.get(school_id, ()))

    def changed(self, school_id: int) -> None:
        with self._lock:
            entries = list(self._waiting.get(school_id, ()))
        for loop, event in entries:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that loop is closed: the page is gone
                pass
