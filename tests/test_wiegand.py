"""Wiegand out: frames decoded back from gpiozero's MockPin records, parity, timing, idle levels.

Timing is checked two ways, neither depending on how fast or loaded the machine is:
- on the real clock, only what the writer guarantees whatever the scheduler does: no pulse is
  shorter than asked, no bit starts before frame start + k x interval, no gap between pulses
  is shorter than half an interval, and both lines are high between bits and frames;
- on a virtual clock, handed to the writer and to MockPin (whose timestamps it records), the
  exact schedule: bit k starts at k x interval, each pulse lasts `pulse`, and a bit that runs
  late pushes the next ones back without bunching them up, until they are back on schedule.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gpiozero.pins.mock import MockFactory, MockPin

from kiosk.config import WiegandConfig
from kiosk.door.gpio_board import GpiozeroBoard
from kiosk.door.wiegand import WiegandOutput, build_wiegand, frame_bits
from kiosk.storage.credentials import Card

PULSE, INTERVAL = 50e-6, 2e-3


def absolute_edges(pin: MockPin, base: float) -> list[tuple[float, bool]]:
    """MockPin keeps (seconds since the previous change, level); add them up from the clear time."""
    out, t = [], base
    for state in pin.states:
        t += state.timestamp
        out.append((t, bool(state.state)))
    return out


def decode(d0: MockPin, d1: MockPin, base0: float, base1: float) -> list[tuple[int, float, float]]:
    """(bit, fell at, rose at) for every low pulse on either line, in time order."""
    pulses = []
    for bit, pin, base in ((0, d0, base0), (1, d1, base1)):
        edges = absolute_edges(pin, base)
        assert edges[0][1] is True, "a line must idle high"
        for (t_fall, level), (t_rise, next_level) in zip(edges[1::2], edges[2::2]):
            assert (level, next_level) == (False, True)
        assert len(edges) % 2 == 1 and edges[-1][1] is True, "a line was left low"
        pulses += [(bit, fall, rise) for (fall, _), (rise, _) in zip(edges[1::2], edges[2::2])]
    return sorted(pulses, key=lambda p: p[1])


def parity_ok(bits: list[int]) -> bool:
    half = (len(bits) - 2) // 2
    return sum(bits[: 1 + half]) % 2 == 0 and sum(bits[1 + half :]) % 2 == 1


@pytest.fixture()
def factory() -> Iterator[MockFactory]:
    factory = MockFactory()
    yield factory
    factory.reset()


def output_on(factory: MockFactory, length: int) -> tuple[WiegandOutput, MockPin, MockPin, float, float]:
    wiegand = build_wiegand(WiegandConfig(d0_pin=23, d1_pin=24, format=length), GpiozeroBoard(factory, "mock"))
    d0, d1 = factory.pin(23), factory.pin(24)
    d0.clear_states()
    base0 = d0._last_change  # the instant clear_states took: MockPin's records count from it
    d1.clear_states()
    base1 = d1._last_change
    return wiegand, d0, d1, base0, base1


def test_h10301_and_34_bit_frames_carry_facility_number_and_parity() -> None:
    bits = frame_bits(Card(12, 3456), 26)
    assert len(bits) == 26 and parity_ok(bits)
    assert int("".join(map(str, bits[1:9])), 2) == 12 and int("".join(map(str, bits[9:25])), 2) == 3456
    bits34 = frame_bits(Card(1000, 65535), 34)
    assert len(bits34) == 34 and parity_ok(bits34)
    assert int("".join(map(str, bits34[1:17])), 2) == 1000 and int("".join(map(str, bits34[17:33])), 2) == 65535
    # the parity bits really depend on the halves: flip one data bit in each half
    assert frame_bits(Card(13, 3456), 26)[0] != bits[0] and frame_bits(Card(12, 3457), 26)[-1] != bits[-1]
    assert frame_bits(Card(None, 0), 26) == [0] * 25 + [1]  # odd parity over nothing set


@pytest.mark.parametrize(("length", "card"), [(26, Card(117, 40001)), (34, Card(4242, 513)), (26, Card(None, 0xABCDE))])
def test_frames_decode_back_from_the_pins_with_the_promised_timing(factory: MockFactory, length: int, card: Card) -> None:
    wiegand, d0, d1, base0, base1 = output_on(factory, length)
    for _ in range(2):  # two frames: the lines go back to idle between them
        result = wiegand.grant("Ada", card)
        assert result.sent, result.detail
    pulses = decode(d0, d1, base0, base1)
    assert len(pulses) == 2 * length
    expected = frame_bits(card, length)
    for frame in (pulses[:length], pulses[length:]):
        bits = [bit for bit, _, _ in frame]
        assert bits == expected and parity_ok(bits)
        data = int("".join(map(str, bits[1:-1])), 2)
        assert data == card.data_bits(length)
        first = frame[0][1]
        for k, (_bit, fell, rose) in enumerate(frame):
            assert rose - fell >= PULSE  # never shorter than asked
            assert fell >= first + k * INTERVAL  # never ahead of the frame's schedule
        for (_, _, rose), (_, next_fell, _) in zip(frame, frame[1:]):
            assert next_fell - rose >= INTERVAL / 2  # both lines high between bits: no burst
    assert pulses[length][1] > pulses[length - 1][2]  # the second frame starts after the first ended
    assert d0.state == 1 and d1.state == 1  # idle high after the frames
    wiegand.close()


class VirtualClock:
    """Time that moves only when the writer waits (or a test says a write was slow)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def wait(self, deadline: float) -> None:
        self.now = max(self.now, deadline)


def test_each_bit_is_timed_from_its_own_start_and_a_late_bit_makes_no_burst(factory: MockFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = VirtualClock()
    monkeypatch.setattr("gpiozero.pins.mock.monotonic", clock)  # MockPin stamps its records with this clock
    wiegand, d0, d1, base0, base1 = output_on(factory, 26)
    late_bit, delay = 5, 0.0073
    writes = {"n": 0}
    real_write = wiegand.writer.lines[0].write, wiegand.writer.lines[1].write

    def slow_write(index: int):
        def write(active: bool) -> None:
            real_write[index](active)
            if active:
                writes["n"] += 1
                if writes["n"] == late_bit + 1:  # the scheduler took the CPU right after this bit began
                    clock.now += delay

        return write

    monkeypatch.setattr(wiegand.writer.lines[0], "write", slow_write(0))
    monkeypatch.setattr(wiegand.writer.lines[1], "write", slow_write(1))
    wiegand.writer.clock, wiegand.writer.wait = clock, clock.wait
    start = clock.now
    assert wiegand.grant("Ada", Card(12, 3456)).sent
    pulses = decode(d0, d1, base0, base1)
    assert [b for b, _, _ in pulses] == frame_bits(Card(12, 3456), 26)
    for k, (_bit, fell, rose) in enumerate(pulses):
        # on schedule up to the late bit, never ahead of it after; each pulse timed from its own start
        if k <= late_bit:
            assert fell == pytest.approx(start + k * INTERVAL, abs=1e-9)
        assert fell >= start + k * INTERVAL - 1e-9
        assert rose - fell == pytest.approx(PULSE + delay if k == late_bit else PULSE, abs=1e-9)
    gaps = [b[1] - a[2] for a, b in zip(pulses, pulses[1:])]
    assert min(gaps) == pytest.approx(INTERVAL / 2, abs=1e-9)  # the catch-up: half an interval, no burst
    assert gaps[late_bit] == pytest.approx(INTERVAL / 2, abs=1e-9)  # right after the late bit
    assert pulses[late_bit + 1][1] > start + (late_bit + 1) * INTERVAL + delay / 2  # pushed back, not squeezed in
    assert pulses[-1][1] == pytest.approx(start + 25 * INTERVAL, abs=1e-9)  # and back on the schedule: no drift
    wiegand.close()


def test_a_card_that_does_not_fit_or_no_card_is_not_sent(factory: MockFactory) -> None:
    wiegand, d0, d1, _, _ = output_on(factory, 26)
    too_big = wiegand.grant("Ada", Card(300, 1))
    assert not too_big.sent and "facility above 255" in too_big.detail
    none = wiegand.grant("Bob", None)
    assert not none.sent and "no card number" in none.detail
    assert len(d0.states) == 1 and len(d1.states) == 1  # nothing moved
    wiegand.close()
