"""The live pages' shared rendering (central/web/live.py): the many pages a tap wakes at once render the
roster once between them, and a change of the school (a new generation) is never served an older one."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from central.web.live import Hub, Shared


def test_pages_woken_together_render_once_and_share_it():
    shared, started, release = Shared(ttl=60), threading.Event(), threading.Event()
    calls = []

    def make():
        calls.append(1)
        started.set()
        release.wait(10)  # every other page asks while this one renders
        return ("<table>@@csrf-slot@@</table>", 7)

    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(shared.get, ("teacher", 1, 0), make)
        started.wait(10)
        others = [pool.submit(shared.get, ("teacher", 1, 0), make) for _ in range(7)]
        release.set()
        got = [first.result(10)] + [f.result(10) for f in others]
    assert calls == [1] and shared.renders == 1
    assert got == [("<table>@@csrf-slot@@</table>", 7)] * 8
    assert shared.peek(("teacher", 1, 0)) == ("<table>@@csrf-slot@@</table>", 7)


def test_a_change_makes_a_new_key_and_a_failed_render_is_not_kept():
    hub, shared = Hub(), Shared(ttl=60)
    key = ("rollcall", 5, hub.generation(5))
    assert shared.get(key, lambda: ("before", 1)) == ("before", 1)
    hub.changed(5)  # a tap stored: the pages' next key differs, so they render again
    assert hub.generation(5) == 1 and hub.generation(6) == 0
    assert shared.get(("rollcall", 5, hub.generation(5)), lambda: ("after", 2)) == ("after", 2)

    def broken():
        raise RuntimeError("database away")

    try:
        shared.get(("rollcall", 5, 9), broken)
    except RuntimeError:
        pass
    assert shared.peek(("rollcall", 5, 9)) is None and shared.get(("rollcall", 5, 9), lambda: ("again", 3)) == ("again", 3)


def test_pages_in_the_loop_wait_without_a_thread_and_share_one_render():
    import asyncio

    shared, calls = Shared(ttl=60), []

    def make():
        calls.append(1)
        return ("<table/>", 3)

    async def pages():
        return await asyncio.gather(*(shared.aget(("teacher", 2, 1), make) for _ in range(200)))

    assert asyncio.run(pages()) == [("<table/>", 3)] * 200
    assert calls == [1]
