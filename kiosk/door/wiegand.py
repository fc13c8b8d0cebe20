"""Wiegand out to an access panel: the person's card number as a 26-bit (H10301) or 34-bit frame.

Two open-collector lines, DATA0 and DATA1, idle high; a 0 bit is a short low pulse on D0, a 1 bit
one on D1. Panels time out a frame after a gap of a few milliseconds and misread pulses that
run together, so the timing rules are:

- each bit's pulse ends `pulse` after that bit's own start, read from the clock after the line
  went low (never shorter than asked, whatever the scheduler does);
- bit k starts at the frame's start + k x interval, an absolute deadline (sleeps that overshoot
  do not add up over the frame), but never less than half an interval after the previous
  pulse ended: a bit that ran late pushes the next ones back by at most what it lost, and
  they catch up with the schedule half an interval apart instead of arriving in a burst.

Waiting is done against a deadline (sleep until about a millisecond before, then spin), and
the clock and the wait are injectable so the tests can check the schedule exactly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from kiosk.config import WiegandConfig
from kiosk.door.gpio_board import GpioBoard, OutputLine
from kiosk.door.outputs import DoorOutput, SendResult
from kiosk.errors import KioskError
from kiosk.storage.credentials import Card

Clock = Callable[[], float]
WaitUntil = Callable[[float], None]
SPIN_SECONDS = 0.001  # below this the wait spins: sleep() may overshoot by far more than a 50 us pulse


def frame_bits(card: Card, length: int) -> list[int]:
    """Leading even parity over the first half of the data bits, trailing odd parity over the second."""
    width = length - 2
    data = card.data_bits(length)
    bits = [(data >> (width - 1 - i)) & 1 for i in range(width)]
    half = width // 2
    return [sum(bits[:half]) % 2, *bits, 1 - sum(bits[half:]) % 2]


def wait_until(deadline: float, clock: Clock = time.monotonic) -> None:
    while (left := deadline - clock()) > SPIN_SECONDS:
        time.sleep(left - SPIN_SECONDS)
    while clock() < deadline:
        pass


@dataclass(frozen=True)
class FrameTiming:
    started: float  # clock time the first bit's line went low
    ended: float  # clock time the last bit's line was back high

    @property
    def seconds(self) -> float:
        return self.ended - self.started


class WiegandWriter:
    """Sends frames on two lines whose `active` state is the low pulse (lines idle high)."""

    def __init__(
        self,
        d0: OutputLine,
        d1: OutputLine,
        pulse_seconds: float,
        interval_seconds: float,
        clock: Clock = time.monotonic,
        waiter: WaitUntil | None = None,
    ):
        if not 0 < pulse_seconds * 2 <= interval_seconds:
            raise ValueError("the pulse must be positive and at most half the interval")
        self.lines = (d0, d1)
        self.pulse = pulse_seconds
        self.interval = interval_seconds
        self.clock = clock
        self.wait = waiter or (lambda deadline: wait_until(deadline, clock))
        self._lock = threading.Lock()  # one frame at a time: interleaved frames are garbage to a panel
        for line in self.lines:
            line.write(False)

    def send(self, bits: list[int]) -> FrameTiming:
        with self._lock:
            first = next_start = end = 0.0
            for index, bit in enumerate(bits):
                line = self.lines[bit]
                if index:
                    self.wait(next_start)
                try:
                    line.write(True)
                    start = self.clock()
                    self.wait(start + self.pulse)
                finally:
                    line.write(False)  # a line left low would jam the panel's reader input
                end = self.clock()
                if not index:
                    first = start
                next_start = max(first + (index + 1) * self.interval, end + self.interval / 2)
            return FrameTiming(first, end)

    def release(self) -> None:
        for line in self.lines:
            line.release()


class WiegandOutput(DoorOutput):
    """A grant sends the person's card as one frame; Wiegand has no answer and no link to watch."""

    name = "wiegand"

    def __init__(self, writer: WiegandWriter, length: int):
        self.writer = writer
        self.length = length

    def grant(self, person: str | None, card: Card | None) -> SendResult:
        if card is None:
            return SendResult(self.name, False, f"{person or 'this person'} has no card number")
        try:
            bits = frame_bits(card, self.length)
        except KioskError as exc:
            return SendResult(self.name, False, str(exc))
        try:
            timing = self.writer.send(bits)
        except Exception as exc:  # a GPIO fault: recorded as not sent, the door loop goes on
            return SendResult(self.name, False, f"GPIO error: {exc}")
        return SendResult(self.name, True, f"card {card} as {self.length}-bit in {timing.seconds * 1000:.1f} ms")

    def close(self) -> None:
        self.writer.release()


def build_wiegand(config: WiegandConfig, board: GpioBoard) -> WiegandOutput:
    """D0 and D1 as outputs whose active state is low, so they start (and idle) high."""
    d0 = board.output(config.d0_pin, active_high=False)
    try:
        d1 = board.output(config.d1_pin, active_high=False)
    except BaseException:
        d0.release()
        raise
    writer = WiegandWriter(d0, d1, config.pulse_us / 1e6, config.interval_us / 1e6)
    return WiegandOutput(writer, config.format)
