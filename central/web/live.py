"""What the open live pages wait on: a school's roster may have changed (a gate's event stored, an absence
excused). The domain events arrive in the committing thread (the ingest's, a request's); each waiting page
is an ``asyncio.Event`` in the server's loop, set from there thread-safely.

Each change also moves the school's *generation*, and ``Shared`` keeps what was rendered for it: the many
pages open on one school's roster (the benchmark's 1,000) are woken together by one tap, and the first of
them to ask renders the roster once for every page that shows the same thing (same school, same
generation, same reach, same language); the others wait for it and take it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Any

from starlette.concurrency import run_in_threadpool

from central.core.events import AbsenceExcused, DomainEvents, FeedAdvanced, SchoolWatched


class Hub:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[int, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = defaultdict(set)
        self._generation: dict[int, int] = defaultdict(int)
        # the login of each open page (token hash, user id), by school: checked together at each round
        self._logins: dict[int, dict[int, tuple[str, int]]] = defaultdict(dict)
        self._events: DomainEvents | None = None

    def attach(self, events: DomainEvents) -> Hub:
        # told when a school's first page opens and its last closes (SchoolWatched): what follows the feeds
        self._events = events
        events.subscribe(FeedAdvanced, lambda e: self.changed(e.school_id))
        events.subscribe(AbsenceExcused, lambda e: self.changed(e.school_id))
        return self

    def watch(self, school_id: int, login: tuple[str, int] | None = None) -> tuple[asyncio.AbstractEventLoop, asyncio.Event]:
        """Called in the page's loop: an event set whenever ``school_id``'s roster may have changed.
        ``login`` (the page's token hash and user id) is checked with the school's other pages' (``logins``)."""
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            first = not self._waiting.get(school_id)
            self._waiting[school_id].add(entry)
            if login is not None:
                self._logins[school_id][id(entry)] = login
            if first:
                self._tell(SchoolWatched(school_id, watching=True))
        return entry

    def forget(self, school_id: int, entry: tuple[asyncio.AbstractEventLoop, asyncio.Event]) -> None:
        with self._lock:
            self._waiting[school_id].discard(entry)
            self._logins[school_id].pop(id(entry), None)
            if not self._waiting[school_id]:
                del self._waiting[school_id]
                self._logins.pop(school_id, None)
                self._tell(SchoolWatched(school_id, watching=False))

    def _tell(self, event: SchoolWatched) -> None:
        # Under the lock, so that a page opening as the last one closes is told in the order it happened:
        # the handler (the bus) only queues it.
        if self._events is not None:
            self._events.publish(event)

    def logins(self, school_id: int) -> dict[str, int]:
        """The logins of ``school_id``'s open pages: token hash -> user id."""
        with self._lock:
            return dict(self._logins.get(school_id, {}).values())

    def watching(self, school_id: int) -> int:
        with self._lock:
            return len(self._waiting.get(school_id, ()))

    def generation(self, school_id: int) -> int:
        """How many changes of ``school_id``'s roster this process has heard of: read after a page wakes,
        before it renders, so a render for generation g shows every change committed before g."""
        with self._lock:
            return self._generation[school_id]

    def changed(self, school_id: int) -> None:
        with self._lock:
            self._generation[school_id] += 1
            entries = list(self._waiting.get(school_id, ()))
        for loop, event in entries:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that loop is closed: the page is gone
                pass


class Shared:
    """What was rendered, shared by every page that shows the same thing (``key``): made once by the first
    page to ask, the others wait for it; kept ``ttl`` seconds (a key names its generation, so a change
    makes a new key at once; the time only bounds what the clock alone moves, an absence or an overdue)."""

    def __init__(self, ttl: float = 2.0, keep: int = 512) -> None:
        self.ttl, self.keep = ttl, keep
        self._lock = threading.Lock()
        self._made: dict[Hashable, tuple[float, Any]] = {}
        self._making: dict[Hashable, Future] = {}
        self.renders = 0  # how many times something was made (the tests and the benchmark read it)

    def peek(self, key: Hashable) -> Any | None:
        """Made and fresh: without waiting (a page's loop may ask)."""
        with self._lock:
            found = self._made.get(key)
        return found[1] if found and found[0] > time.monotonic() else None

    def _claim(self, key: Hashable) -> tuple[Any, Future | None, bool]:
        """(fresh value or None, the future to wait for or to fulfil, whether this caller makes it)."""
        with self._lock:
            found = self._made.get(key)
            if found and found[0] > time.monotonic():
                return found[1], None, False
            future = self._making.get(key)
            if future is None:
                future = self._making[key] = Future()
                return None, future, True
            return None, future, False

    def _keep(self, key: Hashable, future: Future, value: Any, ttl: float | None = None) -> None:
        with self._lock:
            del self._making[key]
            self.renders += 1
            now = time.monotonic()
            if len(self._made) >= self.keep:
                self._made = {k: v for k, v in self._made.items() if v[0] > now}
            if len(self._made) < self.keep and value is not None:
                self._made[key] = (now + (self.ttl if ttl is None else ttl), value)
        future.set_result(value)

    def _drop(self, key: Hashable, future: Future, exc: BaseException) -> None:
        with self._lock:
            del self._making[key]
        if isinstance(exc, Exception):
            future.set_exception(exc)
        else:  # the maker's page went away meanwhile: the waiters make it themselves
            future.set_result(None)

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """Made, or made now by this caller, or by another caller this one waits for (a worker thread)."""
        while True:
            value, future, mine = self._claim(key)
            if future is None:
                return value
            if not mine:
                value = future.result()
                if value is not None:
                    return value
                continue
            try:
                value = make()
            except BaseException as exc:
                self._drop(key, future, exc)
                raise
            self._keep(key, future, value)
            return value

    async def aget(self, key: Hashable, make: Callable[[], Any], ttl: float | None = None) -> Any:
        """``get`` for a page's loop: the maker renders in a worker thread, the other pages wait in the loop
        (a thousand pages woken by one tap hold no thread while one renders for them all). ``ttl``: how
        long this one is kept, if not the ``ttl`` of all."""
        while True:
            value, future, mine = self._claim(key)
            if future is None:
                return value
            if not mine:
                value = await asyncio.wrap_future(future)
                if value is not None:
                    return value
                continue
            try:
                value = await run_in_threadpool(make)
            except BaseException as exc:
                self._drop(key, future, exc)
                raise
            self._keep(key, future, value, ttl)
            return value
