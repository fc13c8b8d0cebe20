"""Time as the door sees it: a monotonic clock for windows, cooldowns and timers, a wall clock
for event times and weekly access windows. Handed in, so tests step time instead of sleeping.

The relay's closing timer and the door contact's held-open alarm are scheduled on the same
clock (`call_later`), so a test that steps a `ManualClock` sees them fire at the stepped
time, in order, on its own thread: no test depends on how fast the machine is.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Protocol


class Timer(Protocol):
    def cancel(self) -> None:
        """Do not run the callback (a no-op once it has run)."""


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never jumps (cooldowns, track ages, latencies)."""

    def now(self) -> datetime:
        """The aware UTC wall time (event times, validity dates, weekly windows)."""

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` of this clock pass (a paced replay waiting for its next frame)."""

    def call_later(self, seconds: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` once ``seconds`` of this clock have passed (on another thread, or the advancing one)."""


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def call_later(self, seconds: float, callback: Callable[[], None]) -> Timer:
        timer = threading.Timer(seconds, callback)
        timer.daemon = True  # a pending close must not keep a finished process alive; shutdown closes anyway
        timer.start()
        return timer


class _ManualTimer:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """Time that moves only when `advance` is called; due timers run inside `advance`, in time order.

    For tests and replays that must not depend on the machine's speed: a replayed camera can
    advance it by one frame interval per frame, so pulses, cooldowns and alarms are counted
    in frames, not in how long the machine took.
    """

    def __init__(self, start: datetime | None = None, monotonic: float = 1000.0):
        self._origin = monotonic
        self._start = start or datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)
        self._now = monotonic
        self._lock = threading.RLock()
        self._due: list[tuple[float, int, _ManualTimer, Callable[[], None]]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        return self._now

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._now - self._origin)

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def call_later(self, seconds: float, callback: Callable[[], None]) -> Timer:
        timer = _ManualTimer()
        with self._lock:
            heapq.heappush(self._due, (self._now + max(seconds, 0.0), next(self._order), timer, callback))
        return timer

    def advance(self, seconds: float) -> None:
        """Move time on by ``seconds``, running every timer that falls due on the way at its own time.

        Callbacks run without the clock's lock held, so they may schedule or cancel timers.
        """
        with self._lock:
            target = self._now + seconds
        while True:
            with self._lock:
                if not self._due or self._due[0][0] > target:
                    self._now = max(self._now, target)
                    return
                due, _, timer, callback = heapq.heappop(self._due)
                self._now = max(self._now, due)
            if not timer.cancelled:
                callback()
