"""The lock relay: opened for a pulse, then closed by itself; closed whenever anything goes wrong.

Fail-secure is the point of this file. The relay starts closed, `pulse` schedules its own
closing on a timer (so a stalled door loop cannot hold the door open), `close` is
idempotent and safe from any thread or a signal handler, and `shutdown` closes it and releases
the pin on every exit path. The door loop, the exit button and `kiosk doctor` all use the
`DoorRelay` interface; `build_relay` picks the board (gpiozero, Jetson.GPIO, or gpiozero's mock
pins when there is no GPIO hardware) through `kiosk.door.gpio_board`.
"""

from __future__ import annotations

import atexit
import logging
import math
import signal
import threading
from abc import ABC, abstractmethod
from types import FrameType

from kiosk.clock import Clock, SystemClock, Timer
from kiosk.config import DoorHardwareConfig
from kiosk.door.gpio_board import GpioBoard, OutputLine, open_board
from kiosk.errors import KioskError

log = logging.getLogger(__name__)


class DoorRelay(ABC):
    """What the kiosk may do with the lock."""

    @abstractmethod
    def pulse(self, seconds: float) -> None:
        """Open now and close by itself after `seconds` (returns at once); a pulse while open extends it."""

    @abstractmethod
    def close(self) -> None:
        """Close now. Idempotent; safe from any thread and from a signal handler."""

    @property
    @abstractmethod
    def is_open(self) -> bool: ...

    @abstractmethod
    def shutdown(self) -> None:
        """Close and release the pin; later pulses are refused."""

    def __enter__(self) -> DoorRelay:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()


class TimedRelay(DoorRelay):
    """A relay on one output line, closed on time by a timer of its own on the given clock.

    The timer runs on the clock (`SystemClock`: a timer thread; a test's `ManualClock`: when
    the test steps time), so a stalled door loop cannot hold the door open, and a test counts
    openings by stepped time, never by how fast the machine is. `close` deliberately takes no
    lock, so a signal handler that interrupts a `pulse` on the same thread cannot deadlock; the
    pending timer re-checks under the lock and shuts a door that a racing pulse left open
    without a deadline. A pulse that finds the previous one overdue (its timer not yet run)
    closes first, so every grant after a pulse has ended is its own opening.
    """

    def __init__(self, line: OutputLine, description: str = "", clock: Clock | None = None):
        self.description = description
        self._line = line
        self._line.write(False)
        self._clock = clock or SystemClock()
        self._lock = threading.RLock()
        self._deadline: float | None = None
        self._timer: Timer | None = None
        self._shut = False

    def pulse(self, seconds: float) -> None:
        if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
            raise ValueError(f"pulse length must be a positive number of seconds, not {seconds!r}")
        with self._lock:
            if self._shut:
                raise KioskError("the door relay has been shut down")
            now = self._clock.monotonic()
            if self._line.active and (self._deadline is None or now >= self._deadline):
                self._line.write(False)  # the last pulse is over (its timer is late): this is a new opening
            self._deadline = now + seconds
            self._line.write(True)
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._clock.call_later(seconds, self._close_when_due)
        log.info("door relay open for %.1f s", seconds)

    def close(self) -> None:
        self._deadline = None
        self._line.write(False)

    @property
    def is_open(self) -> bool:
        return not self._shut and self._line.active

    def shutdown(self) -> None:
        with self._lock:
            self.close()
            if self._shut:
                return
            self._shut = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._line.release()
        log.info("door relay closed and released")

    def _close_when_due(self) -> None:
        with self._lock:
            if self._shut:
                return
            deadline = self._deadline
            if deadline is not None and self._clock.monotonic() < deadline:
                return  # a newer pulse extended the opening; its own timer closes it
            self._deadline = None
            if self._line.active:
                self._line.write(False)
                log.info("door relay closed")


def build_relay(config: DoorHardwareConfig, board: GpioBoard | None = None, clock: Clock | None = None) -> DoorRelay:
    """The configured relay, closed, and shut down at interpreter exit whatever else happens.

    `board` lets the door sensors share the relay's GPIO backend; `clock` times the pulses
    (the door service's clock, so a replay under a stepped clock counts pulses exactly).
    """
    board = board or open_board(config)
    line = board.output(config.relay_pin, config.relay_active_high)
    level = "active-high" if config.relay_active_high else "active-low"
    relay = TimedRelay(line, f"relay on pin {config.relay_pin} ({level}) via {board.description}", clock)
    atexit.register(relay.shutdown)
    log.info("door %s", relay.description)
    return relay


def close_on_signals(relay: DoorRelay, signums: tuple[int, ...] = (signal.SIGTERM, signal.SIGHUP)) -> None:
    """On SIGTERM (systemd's stop) or SIGHUP, close the relay first, then do what was set before.

    The previous handler still runs, so a loop's own graceful-stop handler keeps working; where
    there was none, SystemExit unwinds the stack so every `finally` and `with` runs. A handler
    installed later must call `relay.close()` itself. Main thread only (a Python rule).
    """
    for signum in signums:
        previous = signal.getsignal(signum)

        def handler(num: int, frame: FrameType | None, previous: object = previous) -> None:
            relay.close()
            if callable(previous):
                previous(num, frame)
            elif previous != signal.SIG_IGN:
                raise SystemExit(128 + num)

        signal.signal(signum, handler)
