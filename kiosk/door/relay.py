"""The lock relay: opened for a pulse, then closed by itself; closed whenever anything goes wrong.

Fail-secure is the point of this file. The relay starts closed, `pulse` schedules its own
closing on a timer thread (so a stalled door loop cannot hold the door open), `close` is
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
import time
from abc import ABC, abstractmethod
from types import FrameType

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
    """A relay on one output line, closed on time by its own watcher thread.

    `close` deliberately takes no lock, so a signal handler that interrupts a `pulse` on the
    same thread cannot deadlock; the watcher re-checks under the lock after every close and
    shuts a door that a racing pulse left open without a deadline.
    """

    def __init__(self, line: OutputLine, description: str = ""):
        self.description = description
        self._line = line
        self._line.write(False)
        self._lock = threading.RLock()
        self._deadline: float | None = None
        self._wake = threading.Event()
        self._shut = False
        self._watcher = threading.Thread(target=self._close_when_due, name="door-relay", daemon=True)
        self._watcher.start()

    def pulse(self, seconds: float) -> None:
        if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
            raise ValueError(f"pulse length must be a positive number of seconds, not {seconds!r}")
        with self._lock:
            if self._shut:
                raise KioskError("the door relay has been shut down")
            self._deadline = time.monotonic() + seconds
            self._line.write(True)
        self._wake.set()
        log.info("door relay open for %.1f s", seconds)

    def close(self) -> None:
        self._deadline = None
        self._line.write(False)
        self._wake.set()

    @property
    def is_open(self) -> bool:
        return not self._shut and self._line.active

    def shutdown(self) -> None:
        with self._lock:
            self.close()
            if self._shut:
                return
            self._shut = True
            self._line.release()
        self._wake.set()
        if threading.current_thread() is not self._watcher:
            self._watcher.join(timeout=1.0)
        log.info("door relay closed and released")

    def _close_when_due(self) -> None:
        timeout: float | None = None
        while True:
            self._wake.wait(timeout)
            self._wake.clear()
            with self._lock:
                if self._shut:
                    return
                deadline, now = self._deadline, time.monotonic()
                if deadline is not None and now < deadline:
                    timeout = deadline - now
                    continue
                self._deadline, timeout = None, None
                if self._line.active:
                    self._line.write(False)
                    log.info("door relay closed")


def build_relay(config: DoorHardwareConfig, board: GpioBoard | None = None) -> DoorRelay:
    """The configured relay, closed, and shut down at interpreter exit whatever else happens.

    `board` lets the door sensors share the relay's GPIO backend.
    """
    board = board or open_board(config)
    line = board.output(config.relay_pin, config.relay_active_high)
    level = "active-high" if config.relay_active_high else "active-low"
    relay = TimedRelay(line, f"relay on pin {config.relay_pin} ({level}) via {board.description}")
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
