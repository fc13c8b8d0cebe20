"""The door's inputs: the door contact (held-open and forced-door alarms) and the exit button.

A forced door is one that opens while the lock relay is closed and nobody pressed the exit
button in the last `exit_grace_seconds`: with the strike locked, only force opens it. A door
left open past `held_open_seconds` raises a held-open alarm once per opening. The exit button
releases the lock for `pulse_seconds`. Every one of these is reported as a `DoorEvent` to one
callback, which the door loop stores; the callback runs on a GPIO or timer thread, so it
should hand the event off quickly (a queue) rather than do slow work itself.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from kiosk.clock import Clock, SystemClock, Timer
from kiosk.config import DoorHardwareConfig
from kiosk.door.gpio_board import GpioBoard, InputLine, open_board
from kiosk.door.relay import DoorRelay
from kiosk.errors import KioskError

log = logging.getLogger(__name__)

EventKind = Literal["opened", "closed", "held-open", "forced", "exit-request"]
ALARMS: frozenset[str] = frozenset({"held-open", "forced"})


@dataclass(frozen=True)
class DoorEvent:
    kind: EventKind
    time: datetime
    detail: str

    @property
    def alarm(self) -> bool:
        return self.kind in ALARMS


EventCallback = Callable[[DoorEvent], None]


class DoorSensors:
    """Watches the configured inputs; without a contact or exit pin it watches nothing."""

    def __init__(self, config: DoorHardwareConfig, relay: DoorRelay, board: GpioBoard, on_event: EventCallback, clock: Clock | None = None):
        self._config = config
        self._clock = clock or SystemClock()  # the held-open alarm and the exit grace run on it
        self._relay = relay
        self._on_event = on_event
        self._lock = threading.RLock()
        self._opened_at: float | None = None  # monotonic time the door opened; None while closed
        self._forced = False
        self._held_alarm: Timer | None = None
        self._held_alarm_raised = False
        self._last_exit_request = -float("inf")
        self._contact: InputLine | None = None
        self._exit: InputLine | None = None
        try:
            if config.contact_pin is not None:
                self._contact = board.input(config.contact_pin, config.input_pull, config.bounce_seconds, self._contact_changed)
                if self._is_open_level(self._contact.high):
                    self._door_opened("door was open when the kiosk started", at_start=True)
            if config.exit_pin is not None:
                self._exit = board.input(config.exit_pin, config.input_pull, config.bounce_seconds, self._exit_changed)
        except BaseException:
            self.close()
            raise

    @property
    def door_open(self) -> bool | None:
        """Whether the contact says the door is open; None without a door contact."""
        if self._contact is None:
            return None
        return self._opened_at is not None

    @property
    def state(self) -> str:
        """closed | open (unlocked or opened) | held-open | forced: the status file's `door_state`."""
        with self._lock:
            if self._opened_at is None:
                return "open" if self._relay.is_open else "closed"
            if self._forced:
                return "forced"
            return "held-open" if self._held_alarm_raised else "open"

    def close(self) -> None:
        """Stop watching and release the input pins (the relay is the caller's to shut down)."""
        with self._lock:
            self._cancel_held_alarm()
            for line in (self._contact, self._exit):
                if line is not None:
                    line.release()
            self._contact = self._exit = None

    # --- inputs --------------------------------------------------------------------------------

    def _is_open_level(self, high: bool) -> bool:
        return high == (self._config.contact_open_level == "high")

    def _contact_changed(self, high: bool) -> None:
        if self._is_open_level(high):
            self._door_opened(None)
        else:
            self._door_closed()

    def _exit_changed(self, high: bool) -> None:
        if high != (self._config.exit_pressed_level == "high"):
            return  # released
        with self._lock:
            self._last_exit_request = self._clock.monotonic()
        try:
            self._relay.pulse(self._config.pulse_seconds)
            detail = f"lock released for {self._config.pulse_seconds:g} s"
        except KioskError as exc:
            detail = f"lock not released: {exc}"
        self._emit("exit-request", detail)

    # --- door state ----------------------------------------------------------------------------

    def _door_opened(self, detail: str | None, at_start: bool = False) -> None:
        with self._lock:
            if self._opened_at is not None:
                return
            now = self._clock.monotonic()
            self._opened_at = now
            self._held_alarm_raised = False
            authorised = self._relay.is_open or now - self._last_exit_request <= self._config.exit_grace_seconds
            self._forced = not authorised and not at_start
            self._held_alarm = self._clock.call_later(self._config.held_open_seconds, self._held_open)
        if self._forced:
            self._emit("forced", "door opened while the lock was closed and no exit was requested")
        else:
            self._emit("opened", detail or ("lock released" if self._relay.is_open else "after an exit request"))

    def _door_closed(self) -> None:
        with self._lock:
            if self._opened_at is None:
                return
            seconds = self._clock.monotonic() - self._opened_at
            self._opened_at = None
            self._forced = False
            self._cancel_held_alarm()
        self._emit("closed", f"after {seconds:.1f} s open")

    def _held_open(self) -> None:
        with self._lock:
            if self._opened_at is None or self._held_alarm_raised:
                return
            self._held_alarm_raised = True
            seconds = self._clock.monotonic() - self._opened_at
        self._emit("held-open", f"door open for {seconds:.1f} s (limit {self._config.held_open_seconds:g} s)")

    def _cancel_held_alarm(self) -> None:
        if self._held_alarm is not None:
            self._held_alarm.cancel()
            self._held_alarm = None

    def _emit(self, kind: EventKind, detail: str) -> None:
        event = DoorEvent(kind, self._clock.now(), detail)
        (log.warning if event.alarm else log.info)("door %s: %s", kind, detail)
        try:
            self._on_event(event)
        except Exception:  # a failing listener must not stop the door from being watched
            log.exception("door event listener failed on %s", kind)


def build_sensors(
    config: DoorHardwareConfig, relay: DoorRelay, on_event: EventCallback, board: GpioBoard | None = None, clock: Clock | None = None
) -> DoorSensors:
    """The configured door contact and exit button on the same GPIO backend (and clock) as the relay."""
    return DoorSensors(config, relay, board or open_board(config), on_event, clock)
