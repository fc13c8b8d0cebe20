"""Door contact and exit button on gpiozero's mock pins, driven the way the wires would drive them."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from conftest import FakeJetsonGPIO
from gpiozero.pins.mock import MockFactory

from kiosk.clock import ManualClock
from kiosk.config import DoorHardwareConfig
from kiosk.door.relay import DoorRelay, build_relay
from kiosk.door.sensors import DoorEvent, DoorSensors, build_sensors

RELAY, CONTACT, EXIT = 17, 27, 22


class Recorder:
    """The door loop's side: it keeps every event (thread-safe, as GPIO callbacks need)."""

    def __init__(self) -> None:
        self.events: list[DoorEvent] = []
        self._lock = threading.Lock()

    def __call__(self, event: DoorEvent) -> None:
        with self._lock:
            self.events.append(event)

    @property
    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


def door(**overrides: object) -> DoorHardwareConfig:
    """Pull-down inputs: the contact reads low while the door is shut, the button high when pressed."""
    base: dict[str, object] = dict(
        pin_factory="mock",
        relay_active_high=True,
        relay_pin=RELAY,
        contact_pin=CONTACT,
        exit_pin=EXIT,
        input_pull="down",
        contact_open_level="high",
        exit_pressed_level="high",
        held_open_seconds=0.3,
        pulse_seconds=0.5,
        bounce_seconds=0.0,
    )
    return DoorHardwareConfig(**(base | overrides))


@pytest.fixture()
def rig(pins: MockFactory) -> Iterator[tuple[DoorRelay, DoorSensors, Recorder, ManualClock]]:
    """Relay and sensors on one stepped clock: alarms and pulses fire when the test moves time."""
    config = door()
    clock = ManualClock()
    relay = build_relay(config, clock=clock)
    recorder = Recorder()
    sensors = build_sensors(config, relay, recorder, clock=clock)
    yield relay, sensors, recorder, clock
    sensors.close()
    relay.shutdown()


Rig = tuple[DoorRelay, DoorSensors, Recorder, ManualClock]


def test_held_open_alarm_fires_after_the_limit_once(rig: Rig, pins: MockFactory) -> None:
    relay, sensors, recorder, clock = rig
    contact = pins.pin(CONTACT)
    relay.pulse(0.5)
    contact.drive_high()
    assert recorder.kinds == ["opened"] and sensors.state == "open"
    clock.advance(0.29)
    assert recorder.kinds == ["opened"]  # 0.3 s is the limit: not yet
    clock.advance(0.01)
    alarm = recorder.events[-1]
    assert alarm.kind == "held-open" and alarm.alarm and "0.3 s" in alarm.detail
    clock.advance(10.0)  # still open: no second alarm for the same opening
    assert recorder.kinds == ["opened", "held-open"] and sensors.state == "held-open"
    contact.drive_low()
    assert recorder.kinds == ["opened", "held-open", "closed"] and sensors.state == "closed"


def test_a_door_shut_in_time_raises_no_alarm(rig: Rig, pins: MockFactory) -> None:
    relay, _, recorder, clock = rig
    contact = pins.pin(CONTACT)
    relay.pulse(0.5)
    contact.drive_high()
    clock.advance(0.1)
    contact.drive_low()
    clock.advance(10.0)
    assert recorder.kinds == ["opened", "closed"]
    assert not any(e.alarm for e in recorder.events)


def test_door_opened_while_locked_is_forced(rig: Rig, pins: MockFactory) -> None:
    relay, sensors, recorder, _ = rig
    assert not relay.is_open
    pins.pin(CONTACT).drive_high()
    assert recorder.kinds == ["forced"] and recorder.events[0].alarm
    assert sensors.state == "forced"
    pins.pin(CONTACT).drive_low()
    assert recorder.kinds == ["forced", "closed"] and sensors.state == "closed"


def test_exit_button_releases_the_lock_and_the_exit_is_not_forced(rig: Rig, pins: MockFactory) -> None:
    relay, _, recorder, clock = rig
    relay_pin, button, contact = (pins.pin(p) for p in (RELAY, EXIT, CONTACT))
    relay_pin.clear_states()
    button.drive_high()  # pressed
    button.drive_low()  # released: no second request
    assert recorder.kinds == ["exit-request"] and relay.is_open
    contact.drive_high()
    contact.drive_low()
    assert recorder.kinds == ["exit-request", "opened", "closed"]
    clock.advance(0.49)
    assert relay.is_open
    clock.advance(0.01)  # pulse_seconds = 0.5
    assert [s.state for s in relay_pin.states] == [False, True, False]


def test_an_exit_request_covers_a_door_opened_just_after_the_lock_closed(pins: MockFactory) -> None:
    config = door(pulse_seconds=0.1, exit_grace_seconds=5.0)
    recorder = Recorder()
    clock = ManualClock()
    with build_relay(config, clock=clock) as relay:
        sensors = build_sensors(config, relay, recorder, clock=clock)
        pins.pin(EXIT).drive_high()
        clock.advance(0.2)  # the pulse is over; a slow leaver pushes the door (a mechanical exit)
        assert not relay.is_open
        pins.pin(CONTACT).drive_high()
        assert recorder.kinds == ["exit-request", "opened"]
        sensors.close()


def test_a_door_opened_after_the_exit_grace_is_forced(pins: MockFactory) -> None:
    config = door(pulse_seconds=0.1, exit_grace_seconds=5.0)
    recorder = Recorder()
    clock = ManualClock()
    with build_relay(config, clock=clock) as relay:
        sensors = build_sensors(config, relay, recorder, clock=clock)
        pins.pin(EXIT).drive_high()
        clock.advance(5.01)
        pins.pin(CONTACT).drive_high()
        assert recorder.kinds == ["exit-request", "forced"]
        sensors.close()


def test_pull_up_wiring_reads_the_other_way_round(pins: MockFactory) -> None:
    """Switches to ground with internal pull-ups (the usual wiring): door open and button idle read high."""
    config = door(input_pull="up", contact_open_level="high", exit_pressed_level="low")
    recorder = Recorder()
    with build_relay(config) as relay:
        sensors = build_sensors(config, relay, recorder)
        # The pull-up makes the mock contact read high, i.e. open at start-up: reported, not forced.
        assert recorder.kinds == ["opened"] and "started" in recorder.events[0].detail
        pins.pin(CONTACT).drive_low()  # the door shuts: the reed switch closes to ground
        pins.pin(EXIT).drive_low()  # pressed
        assert recorder.kinds == ["opened", "closed", "exit-request"] and relay.is_open
        sensors.close()


def test_a_failing_listener_does_not_stop_the_watching(pins: MockFactory) -> None:
    config = door()
    seen: list[str] = []

    def broken(event: DoorEvent) -> None:
        seen.append(event.kind)
        raise RuntimeError("database is locked")

    with build_relay(config) as relay:
        sensors = build_sensors(config, relay, broken)
        pins.pin(CONTACT).drive_high()
        pins.pin(CONTACT).drive_low()
        assert seen == ["forced", "closed"]
        sensors.close()


def test_without_inputs_configured_nothing_is_watched(pins: MockFactory) -> None:
    config = DoorHardwareConfig(pin_factory="mock", relay_pin=RELAY)
    recorder = Recorder()
    with build_relay(config) as relay:
        sensors = build_sensors(config, relay, recorder)
        assert sensors.door_open is None and sensors.state == "closed"
        relay.pulse(1.0)
        assert sensors.state == "open"
        sensors.close()
    assert recorder.events == []


def test_jetson_inputs_report_through_the_same_events(jetson_gpio: FakeJetsonGPIO) -> None:
    """Jetson.GPIO cannot be installed here: a stand-in module records the calls and plays the edges."""
    gpio = jetson_gpio
    config = door(pin_factory="jetson")
    recorder = Recorder()
    with build_relay(config) as relay:
        sensors = build_sensors(config, relay, recorder)
        gpio.levels[CONTACT].append(gpio.HIGH)  # the door is pushed open while locked
        gpio.callbacks[CONTACT](CONTACT)
        gpio.levels[EXIT].append(gpio.HIGH)  # then someone presses the exit button
        gpio.callbacks[EXIT](EXIT)
        assert recorder.kinds == ["forced", "exit-request"] and relay.is_open
        sensors.close()
    assert set(gpio.cleaned) == {RELAY, CONTACT, EXIT} and gpio.callbacks == {}
