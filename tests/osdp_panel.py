"""A real libosdp control panel (CP) on the other end of a pseudo-terminal, for the tests and the bench.

The kiosk's reader opens the pty's slave side by name through pyserial, as it would an RS-485
adapter; this panel reads and writes the master side. Nothing here is mocked: both ends are
libosdp, with the secure channel when a key is given.
"""

from __future__ import annotations

import os
import pty
import queue
import time
import tty
from typing import Any

import osdp
from osdp import Command, CommandLEDColor, ControlPanel, Event, LibFlag, LogLevel, PDInfo

COLOURS = {"green": CommandLEDColor.Green, "red": CommandLEDColor.Red, "off": CommandLEDColor.Black}


def pty_pair() -> tuple[int, int, str]:
    """(master fd, slave fd, slave path); the slave fd is held so the pty lives while the test runs."""
    master, slave = pty.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    return master, slave, os.ttyname(slave)


class _MasterChannel(osdp.Channel):
    def __init__(self, fd: int):
        super().__init__()
        self.fd = fd
        os.set_blocking(fd, False)
        self.flush()  # a panel that starts afresh does not read replies meant for the one before it


    def read(self, max_bytes: int) -> bytes:
        try:
            return os.read(self.fd, max_bytes)
        except OSError:  # nothing to read (EAGAIN), or the other side is not open yet (EIO)
            return b""

    def write(self, buf: bytes) -> int:
        try:
            return os.write(self.fd, buf)
        except OSError:
            return 0

    def flush(self) -> None:
        while self.read(4096):
            pass


class TestPanel:
    """One CP polling one PD address over the pty master."""

    __test__ = False

    def __init__(self, master_fd: int, address: int, scbk: bytes | None, enforce: bool = True):
        # notifications: the CP's own view of the link arrives as events, so a test can wait for it.
        # enforce=False is a panel installing a new reader: when its key fails it retries with the
        # default key SCBK-D and, if the reader takes that (install mode), sets its own key (KEYSET).
        flags = [LibFlag.EnableNotification] + ([LibFlag.EnforceSecure] if scbk is not None and enforce else [])
        self.address = address
        self.needs_secure = scbk is not None
        self.done: queue.Queue[tuple[int, int]] = queue.Queue()
        self.cp = ControlPanel(
            [PDInfo(address, _MasterChannel(master_fd), scbk=scbk, flags=flags)], log_level=LogLevel.Error,
            command_completion_handler=lambda _address, command, status: self.done.put((command["command"], status)),
        )
        self.cp.start()

    def card_read(self, timeout: float) -> dict[str, Any] | None:
        """The next card read the PD sent, or None if none came within `timeout` seconds."""
        while True:
            event = self.cp.get_event(self.address, timeout=timeout)
            if event is None or event["event"] == Event.CardRead:
                return event

    def secure(self) -> bool:
        return self.cp.is_sc_active(self.address)

    def wait_ready(self, timeout: float) -> None:
        """Until the CP itself has the PD online (and secure): the PD may see it a moment before."""
        deadline = time.monotonic() + timeout
        while not (self.cp.is_online(self.address) and (self.secure() or not self.needs_secure)):
            if self.cp.get_event(self.address, timeout=max(0.0, deadline - time.monotonic())) is None:
                raise TimeoutError("the CP never had the PD online")

    def _submit(self, command: dict[str, Any], timeout: float) -> None:
        """Send a command and wait until the PD acknowledged it (or fail loudly)."""
        self.wait_ready(timeout)
        if not self.cp.submit_command(self.address, command):
            raise RuntimeError(f"the CP would not queue {command}")
        kind, status = self.done.get(timeout=timeout)
        if kind != command["command"] or status != 0:
            raise RuntimeError(f"command {command} completed as {kind} with status {status}")

    def led(self, colour: str, timeout: float = 30.0) -> None:
        self._submit({
            "command": Command.LED, "reader": 0, "led_number": 0, "control_code": 1, "on_count": 10, "off_count": 0,
            "on_color": COLOURS[colour], "off_color": CommandLEDColor.Black, "timer_count": 30, "temporary": True,
        }, timeout)

    def buzzer(self, beeps: int, timeout: float = 30.0) -> None:
        self._submit({
            "command": Command.Buzzer, "reader": 0, "control_code": 2, "on_count": 2, "off_count": 2, "rep_count": beeps,
        }, timeout)

    def output(self, control_code: int, timer_count: int = 0, timeout: float = 30.0) -> None:
        self._submit({
            "command": Command.Output, "output_no": 0, "control_code": control_code, "timer_count": timer_count,
        }, timeout)

    def keyset(self, key: bytes, timeout: float = 30.0) -> None:
        """Give the reader a new SCBK over the secure channel; libosdp then restarts the channel with it."""
        self._submit({"command": Command.Keyset, "type": 1, "data": key}, timeout)

    def close(self) -> None:
        self.cp.teardown()


def card_bits(event: dict[str, Any]) -> list[int]:
    """The Wiegand bits of a raw card read, MSB first."""
    value = int.from_bytes(event["data"], "big")
    total = len(event["data"]) * 8
    return [(value >> (total - 1 - i)) & 1 for i in range(event["length"])]
