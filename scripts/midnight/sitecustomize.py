"""Loaded only by scripts/test-at-midnight (on PYTHONPATH there): a ``time.sleep`` that faketime
leaves alone. libfaketime 0.9.10 makes ``time.sleep`` fail with EINVAL while the monotonic clock is
left real (FAKETIME_DONT_FAKE_MONOTONIC=1), and faking the monotonic clock instead makes every timed
lock wait hang; ``select()`` takes a relative timeout, which it does not touch. docs/testing.md."""

import select
import time


def _sleep(seconds: float) -> None:
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    select.select([], [], [], seconds)


time.sleep = _sleep
