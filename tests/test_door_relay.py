"""The lock relay on gpiozero's mock pins: what the pin did, and when (fail-secure on every path).

Assertions are on the mock pin's recorded states and times, never on mocks of our own calls.
The Jetson backend cannot be installed here; one test drives it through a small fake
Jetson.GPIO module (a stand-in for the real library, which only exists on a Jetson).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, FakeJetsonGPIO
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPin

from kiosk.clock import ManualClock, SystemClock
from kiosk.config import DoorHardwareConfig
from kiosk.door.gpio_board import open_board
from kiosk.door.relay import build_relay, close_on_signals
from kiosk.errors import KioskError

PIN = 17


def relay_pin(factory: MockFactory) -> MockPin:
    return factory.pin(PIN)


def levels(pin: MockPin) -> list[bool]:
    return [s.state for s in pin.states]


@pytest.mark.parametrize("active_high", [True, False])
def test_closed_at_start_up(pins: MockFactory, active_high: bool) -> None:
    relay = build_relay(DoorHardwareConfig(pin_factory="mock", relay_pin=PIN, relay_active_high=active_high))
    pin = relay_pin(pins)
    assert pin.function == "output"
    assert pin.state is (not active_high)  # de-energised: low for active-high, high for active-low
    assert not relay.is_open
    relay.shutdown()


def test_pulse_opens_then_closes_by_itself(pins: MockFactory) -> None:
    clock = ManualClock()
    relay = build_relay(DoorHardwareConfig(pin_factory="mock", relay_pin=PIN, relay_active_high=True), clock=clock)
    pin = relay_pin(pins)
    pin.clear_states()
    relay.pulse(0.3)  # returns at once: closing is the timer's job, not the door loop's
    assert relay.is_open and pin.state is True
    clock.advance(0.299)
    assert relay.is_open
    clock.advance(0.001)
    assert not relay.is_open
    assert levels(pin) == [False, True, False]
    relay.shutdown()


def test_the_system_clock_closes_the_relay_on_a_timer_of_its_own(pins: MockFactory) -> None:
    """With nobody stepping time, the real timer shuts the door (never before its time)."""
    fired = threading.Event()

    class ObservedClock(SystemClock):
        def call_later(self, seconds, callback):  # type: ignore[no-untyped-def]
            return super().call_later(seconds, lambda: (callback(), fired.set()))

    relay = build_relay(DoorHardwareConfig(pin_factory="mock", relay_pin=PIN, relay_active_high=True), clock=ObservedClock())
    started = time.monotonic()
    relay.pulse(0.05)
    assert fired.wait(timeout=60.0), "the relay's timer never ran"
    assert time.monotonic() - started >= 0.05
    assert not relay.is_open and levels(relay_pin(pins))[-2:] == [True, False]
    relay.shutdown()


def test_active_low_pulse_drives_the_pin_low(pins: MockFactory) -> None:
    clock = ManualClock()
    relay = build_relay(DoorHardwareConfig(pin_factory="mock", relay_pin=PIN, relay_active_high=False), clock=clock)
    pin = relay_pin(pins)
    pin.clear_states()
    relay.pulse(0.2)
    assert pin.state is False
    clock.advance(0.2)
    assert levels(pin) == [True, False, True]
    relay.shutdown()


def test_a_second_pulse_extends_the_opening(pins: MockFactory) -> None:
    clock = ManualClock()
    relay = build_relay(DoorHardwareConfig(pin_factory="mock", relay_pin=PIN, relay_active_high=True), clock=clock)
    pin = relay_pin(pins)
    pin.clear_states()
    relay.pulse(0.3)
    clock.advance(0.2)
    relay.pulse(0.3)  # a second granted person: the door stays open, without a flicker
    clock.advance(0.29)
    assert relay.is_open  # 0.49 s: the first pulse alone would have closed at 0.3
    clock.advance(0.01)
    assert levels(pin) == [False, True, False]
    relay.shutdown()


def test_a_pulse_after_the_last_one_ended_is_its_own_opening(pins: MockFactory) -> None:
    """Grants 0.2 s apart with 0.2 s pulses: two openings, whatever the machine's speed."""
    clock = ManualClock()
    relay = build_relay(DoorHardwareConfig(pin_factory="mock", relay_pin=PIN, relay_active_high=True), clock=clock)
    pin = relay_pin(pins)
    pin.clear_states()
    for _ in range(3):
        relay.pulse(0.2)
        clock.advance(0.2)
    assert levels(pin) == [False, True, False, True, False, True, False]
    relay.shutdown()


def test_close_cuts_a_pulse_short_and_is_idempotent(pins: MockFactory) -> None:
    clock = ManualClock()
    relay = build_relay(DoorHardwareConfig(pin_factory="mock", relay_pin=PIN, relay_active_high=True), clock=clock)
    pin = relay_pin(pins)
    pin.clear_states()
    relay.pulse(5.0)
    relay.close()
    relay.close()
    clock.advance(10.0)  # the pulse's timer finds nothing to do
    assert levels(pin) == [False, True, False]
    assert not relay.is_open
    relay.shutdown()


def test_closed_after_an_exception_in_the_loop(pins: MockFactory) -> None:
    def door_loop() -> None:
        with build_relay(DoorHardwareConfig(pin_factory="mock", relay_pin=PIN, relay_active_high=True)) as relay:
            relay.pulse(60.0)
            raise RuntimeError("the loop broke while the door was open")

    with pytest.raises(RuntimeError):
        door_loop()
    pin = relay_pin(pins)
    assert levels(pin)[-2:] == [True, False]
    assert pin.state is False


def test_shutdown_releases_the_pin_and_refuses_later_pulses(pins: MockFactory) -> None:
    relay = build_relay(DoorHardwareConfig(pin_factory="mock", relay_pin=PIN, relay_active_high=True))
    relay.pulse(60.0)
    relay.shutdown()
    pin = relay_pin(pins)
    assert pin.state is False and pin.function == "input"  # closed, then handed back
    with pytest.raises(KioskError, match="shut down"):
        relay.pulse(1.0)
    relay.close()  # a late signal handler after shutdown is harmless
    relay.shutdown()
    assert pin.state is False


def test_close_racing_pulses_from_threads_never_leaves_the_door_open(pins: MockFactory) -> None:
    relay = build_relay(DoorHardwareConfig(pin_factory="mock", relay_pin=PIN, relay_active_high=True))
    stop = threading.Event()

    def pulser() -> None:
        while not stop.is_set():
            relay.pulse(30.0)

    thread = threading.Thread(target=pulser)
    thread.start()
    for _ in range(200):
        relay.close()
    stop.set()
    thread.join()
    relay.close()
    assert not relay.is_open and relay_pin(pins).state is False
    relay.shutdown()


@pytest.mark.parametrize("seconds", [0, -1, float("nan"), float("inf")])
def test_pulse_rejects_nonsense_lengths(pins: MockFactory, seconds: float) -> None:
    relay = build_relay(DoorHardwareConfig(pin_factory="mock", relay_pin=PIN, relay_active_high=True))
    with pytest.raises(ValueError):
        relay.pulse(seconds)
    assert not relay.is_open
    relay.shutdown()


def test_no_gpio_hardware_falls_back_to_mock_pins_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    previous = Device.pin_factory
    Device.pin_factory = None
    try:
        with caplog.at_level(logging.WARNING, logger="kiosk.door.gpio_board"):
            board = open_board(DoorHardwareConfig(pin_factory="auto"))
        assert board.is_mock and isinstance(Device.pin_factory, MockFactory)
        assert "mock" in board.description and "no GPIO hardware" in board.description
        assert any("door relay is simulated" in r.getMessage() for r in caplog.records)
    finally:
        if Device.pin_factory is not None:
            Device.pin_factory.close()
        Device.pin_factory = previous


def test_a_named_backend_that_cannot_load_is_an_error_not_a_silent_mock() -> None:
    with pytest.raises(KioskError, match="pin_factory = 'lgpio'.*not installed"):
        open_board(DoorHardwareConfig(pin_factory="lgpio"))


def test_a_pin_that_does_not_exist_is_named(pins: MockFactory) -> None:
    with pytest.raises(KioskError, match="pin 99"):
        build_relay(DoorHardwareConfig(pin_factory="mock", relay_pin=99))


CHILD = textwrap.dedent(
    """
    import atexit, sys, time
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory
    Device.pin_factory = MockFactory()
    pin = Device.pin_factory.pin(17)
    # Registered before the relay's own exit hook, so it runs after it (atexit is LIFO).
    atexit.register(lambda: print("final", pin.state, [s.state for s in pin.states], flush=True))
    from kiosk.config import DoorHardwareConfig
    from kiosk.door.relay import build_relay, close_on_signals
    relay = build_relay(DoorHardwareConfig(pin_factory="mock", relay_pin=17, relay_active_high=True))
    close_on_signals(relay)
    relay.pulse(120.0)
    print("open", pin.state, flush=True)
    time.sleep(120)
    """
)


def test_sigterm_leaves_the_relay_closed(tmp_path: Path) -> None:
    """A real process holding the door open gets systemd's SIGTERM; the pin ends closed."""
    script = tmp_path / "hold_open.py"
    script.write_text(CHILD)
    child = subprocess.Popen(
        [sys.executable, str(script)], cwd=REPO, env={"PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().split() == ["open", "True"]
        child.terminate()
        out, err = child.communicate(timeout=20)
    finally:
        child.kill()
    assert child.returncode == 128 + 15, err
    assert out.split("\n")[0] == "final False [False, True, False]", (out, err)


def test_close_on_signals_keeps_the_previous_handler(pins: MockFactory) -> None:
    import signal

    seen: list[int] = []
    previous = signal.signal(signal.SIGHUP, lambda num, frame: seen.append(num))
    try:
        relay = build_relay(DoorHardwareConfig(pin_factory="mock", relay_pin=PIN, relay_active_high=True))
        close_on_signals(relay, (signal.SIGHUP,))
        relay.pulse(60.0)
        signal.raise_signal(signal.SIGHUP)
        assert not relay.is_open and relay_pin(pins).state is False
        assert seen == [signal.SIGHUP]
        relay.shutdown()
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_jetson_backend_drives_the_same_relay(jetson_gpio: FakeJetsonGPIO) -> None:
    gpio = jetson_gpio
    clock = ManualClock()
    relay = build_relay(DoorHardwareConfig(pin_factory="jetson", relay_pin=PIN, relay_active_high=False), clock=clock)
    assert gpio.mode == gpio.BCM
    relay.pulse(0.2)
    assert relay.is_open
    clock.advance(0.2)
    assert not relay.is_open
    relay.shutdown()
    # Set up closed (high), opened once (low), closed on time, and only closed from then on.
    assert gpio.levels[PIN][:4] == [1, 1, 0, 1] and set(gpio.levels[PIN][4:]) == {1}
    assert gpio.cleaned == [PIN]


# --- hardening (issue 13, item 12): safe defaults on real boards ----------------------------


def test_the_default_relay_is_active_low_as_the_readme_recommends(pins: MockFactory) -> None:
    assert DoorHardwareConfig().relay_active_high is False
    assert "active-low (`relay_active_high = false`, the default" in (REPO / "README.md").read_text()
    relay = build_relay(DoorHardwareConfig(pin_factory="mock", relay_pin=PIN))
    assert relay_pin(pins).state is True and not relay.is_open  # idle high: an active-low module stays off
    relay.pulse(30.0)
    assert relay_pin(pins).state is False
    relay.shutdown()
    assert relay_pin(pins).state is True


@pytest.fixture()
def no_pin_factory() -> Iterator[None]:
    """No pin factory chosen yet, as in a fresh `kiosk run` process."""
    previous = Device.pin_factory
    Device.pin_factory = None
    yield
    if Device.pin_factory is not None:
        Device.pin_factory.close()
    Device.pin_factory = previous


def test_auto_never_falls_back_to_mock_pins_on_a_machine_with_a_gpio_chip(tmp_path: Path, no_pin_factory: None) -> None:
    board_dev, plain_dev = tmp_path / "board-dev", tmp_path / "plain-dev"
    board_dev.mkdir()
    plain_dev.mkdir()
    (board_dev / "gpiochip0").touch()
    with pytest.raises(KioskError, match=r"gpiochip0.*pin_factory = \"mock\""):
        open_board(DoorHardwareConfig(pin_factory="auto"), gpio_dev=board_dev)
    assert Device.pin_factory is None, "no mock pins were set up"
    assert open_board(DoorHardwareConfig(pin_factory="mock"), gpio_dev=board_dev).is_mock  # asked for: allowed
    Device.pin_factory.close()
    Device.pin_factory = None
    assert open_board(DoorHardwareConfig(pin_factory="auto"), gpio_dev=plain_dev).is_mock  # no GPIO at all: simulated
