"""Time as the door service sees it: a monotonic clock for windows and cooldowns, a wall clock
for event times and weekly access windows. Handed in, so tests can step time instead of sleeping."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never jumps (cooldowns, track ages, latencies)."""

    def now(self) -> datetime:
        """The aware UTC wall time (event times, validity dates, weekly windows)."""


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(timezone.utc)
