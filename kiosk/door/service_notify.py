"""systemd's notify protocol for `kiosk run`: READY=1, watchdog pings, STOPPING=1, STATUS=.

The unit is Type=notify with WatchdogSec=, so systemd starts the door only once the models are
loaded and the relay is closed (`ready`), and restarts it when the door loop stalls. That only
works if `watchdog` is called from the loop itself, once per iteration, never from a helper
thread that would keep pinging while the loop hangs. Outside systemd (no NOTIFY_SOCKET) every
call is a no-op, so the same code runs in tests, the demo and a terminal.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping

import sdnotify

from kiosk.clock import Clock, SystemClock

log = logging.getLogger(__name__)


class ServiceNotifier:
    """Reads NOTIFY_SOCKET / WATCHDOG_USEC from the environment systemd gave the process."""

    def __init__(self, clock: Clock | None = None) -> None:
        # Real time by default: the watchdog is about the loop stalling, whatever clock it replays on.
        self._clock = clock or SystemClock()
        self.enabled = bool(os.environ.get("NOTIFY_SOCKET"))
        self._notifier = sdnotify.SystemdNotifier() if self.enabled else None
        self.watchdog_seconds = _watchdog_seconds(os.environ)
        # Ping four times per watchdog period: a slow frame or two must not look like a stall.
        self._ping_every = self.watchdog_seconds / 4 if self.watchdog_seconds else math.inf
        self._last_ping = -math.inf
        if self.enabled:
            log.info(
                "running under systemd; watchdog %s",
                f"{self.watchdog_seconds:g} s" if self.watchdog_seconds else "off",
            )

    def ready(self, status: str | None = None) -> None:
        """The door is watching: models loaded, relay closed."""
        self._send("READY=1" + (f"\nSTATUS={status}" if status else ""))
        self._last_ping = self._clock.monotonic()

    def watchdog(self) -> None:
        """Call once per loop iteration; sends WATCHDOG=1 at most four times per period."""
        if self.watchdog_seconds is None:
            return
        now = self._clock.monotonic()
        if now - self._last_ping >= self._ping_every:
            self._last_ping = now
            self._send("WATCHDOG=1")

    def status(self, text: str) -> None:
        """One line for `systemctl status` (camera reconnecting, model reloaded, ...)."""
        self._send(f"STATUS={text}")

    def stopping(self) -> None:
        self._send("STOPPING=1")

    def _send(self, message: str) -> None:
        if self._notifier is not None:
            self._notifier.notify(message)


def _watchdog_seconds(environ: Mapping[str, str]) -> float | None:
    """WATCHDOG_USEC, if it is meant for this process (WATCHDOG_PID, when set, names the receiver)."""
    usec, pid = environ.get("WATCHDOG_USEC"), environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        seconds = int(usec) / 1e6
    except ValueError:
        log.warning("ignoring malformed WATCHDOG_USEC=%r", usec)
        return None
    return seconds if seconds > 0 else None
