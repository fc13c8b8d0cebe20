"""The GPIO lines of the box, whichever board it is: gpiozero pins on a Raspberry Pi (or its mock
pins anywhere), Jetson.GPIO on a Jetson.

gpiozero's local pin backends identify the board by the Raspberry Pi revision, so on a Jetson
they refuse to start; the door relay and sensors therefore talk to the small `OutputLine` /
`InputLine` interfaces here and never to a GPIO library directly. `open_board` chooses the
backend from `door_hardware.pin_factory`; with `auto` and no GPIO hardware it falls back to
gpiozero's mock pins and says so in the log (the door then cannot open anything). A machine
with a GPIO chip (/dev/gpiochip*) is a board whose GPIO library is missing, not a machine
without GPIO: there `auto` refuses to start rather than run a door that never opens, unless
`pin_factory = "mock"` asks for simulated pins.
"""

from __future__ import annotations

import importlib
import logging
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from kiosk.config import DoorHardwareConfig, PinSpec
from kiosk.errors import KioskError

log = logging.getLogger(__name__)

LevelCallback = Callable[[bool], None]  # receives the input's new level: True = high

_GPIOZERO_FACTORIES = {
    "lgpio": "gpiozero.pins.lgpio:LGPIOFactory",
    "rpigpio": "gpiozero.pins.rpigpio:RPiGPIOFactory",
    "pigpio": "gpiozero.pins.pigpio:PiGPIOFactory",
    "native": "gpiozero.pins.native:NativeFactory",
    "mock": "gpiozero.pins.mock:MockFactory",
}
_JETSON_MODEL_FILES = (Path("/proc/device-tree/model"), Path("/sys/firmware/devicetree/base/model"))
GPIO_DEV = Path("/dev")  # where the kernel's GPIO character devices (gpiochip0, ...) appear


def gpio_chips(dev: Path = GPIO_DEV) -> list[Path]:
    """The GPIO chips the kernel offers: any at all means this machine is a board with GPIO lines."""
    return sorted(dev.glob("gpiochip*"))


class OutputLine(ABC):
    """One output pin in terms of the device it drives: active = energised."""

    @abstractmethod
    def write(self, active: bool) -> None: ...

    @property
    @abstractmethod
    def active(self) -> bool: ...

    @abstractmethod
    def release(self) -> None:
        """Drive the line inactive, then hand it back to the system."""


class InputLine(ABC):
    """One input pin; its callback receives each new level (True = high)."""

    @property
    @abstractmethod
    def high(self) -> bool: ...

    @abstractmethod
    def release(self) -> None: ...


class GpioBoard(ABC):
    """A source of lines; `description` says which backend is in force (the log and `kiosk doctor`)."""

    description: str
    is_mock: bool = False

    @abstractmethod
    def output(self, pin: PinSpec, active_high: bool) -> OutputLine:
        """An output that starts inactive (fail-secure: the lock stays locked)."""

    @abstractmethod
    def input(self, pin: PinSpec, pull: str, bounce_seconds: float, on_change: LevelCallback) -> InputLine: ...


# --- gpiozero ------------------------------------------------------------------------------


class _GpiozeroOutput(OutputLine):
    def __init__(self, device: Any):
        self._device = device

    def write(self, active: bool) -> None:
        if self._device.closed:  # released lines were left inactive; a late close is a no-op
            return
        if active:
            self._device.on()
        else:
            self._device.off()

    @property
    def active(self) -> bool:
        return bool(self._device.is_active)

    def release(self) -> None:
        if self._device.closed:
            return
        self._device.off()
        self._device.close()


class _GpiozeroInput(InputLine):
    def __init__(self, device: Any, active_level: bool, on_change: LevelCallback):
        self._device = device
        self._active_level = active_level
        device.when_activated = lambda: on_change(active_level)
        device.when_deactivated = lambda: on_change(not active_level)

    @property
    def high(self) -> bool:
        return bool(self._device.is_active) == self._active_level

    def release(self) -> None:
        self._device.close()


class GpiozeroBoard(GpioBoard):
    def __init__(self, factory: Any, description: str):
        self.factory = factory
        self.description = description
        self.is_mock = type(factory).__name__ == "MockFactory"

    def output(self, pin: PinSpec, active_high: bool) -> OutputLine:
        from gpiozero import DigitalOutputDevice, GPIOZeroError

        try:
            device = DigitalOutputDevice(pin, active_high=active_high, initial_value=False, pin_factory=self.factory)
        except (GPIOZeroError, ValueError) as exc:
            raise KioskError(f"GPIO output pin {pin!r} cannot be used: {exc}") from None
        return _GpiozeroOutput(device)

    def input(self, pin: PinSpec, pull: str, bounce_seconds: float, on_change: LevelCallback) -> InputLine:
        from gpiozero import DigitalInputDevice, GPIOZeroError

        pull_up = {"up": True, "down": False, "off": None}[pull]
        # With a pull resistor gpiozero calls the level away from the pull "active"; without one
        # it needs to be told, and we call high active. Either way the callback gets the level.
        active_level = True if pull_up is None else not pull_up
        try:
            device = DigitalInputDevice(
                pin,
                pull_up=pull_up,
                active_state=True if pull_up is None else None,
                bounce_time=bounce_seconds or None,
                pin_factory=self.factory,
            )
        except (GPIOZeroError, ValueError) as exc:
            raise KioskError(f"GPIO input pin {pin!r} cannot be used: {exc}") from None
        return _GpiozeroInput(device, active_level, on_change)


def _gpiozero_board(name: str, gpio_dev: Path) -> GpiozeroBoard:
    """The configured gpiozero pin factory, shared through `Device.pin_factory` by every device."""
    from gpiozero import Device

    current = Device.pin_factory
    if name == "auto":
        if current is not None:
            return GpiozeroBoard(current, f"gpiozero {type(current).__name__}")
        with warnings.catch_warnings(record=True) as tried:
            warnings.simplefilter("always")
            try:
                factory = Device._default_pin_factory()
            except Exception as exc:  # gpiozero raises BadPinFactory after trying every backend
                reasons = "; ".join(str(w.message) for w in tried) or str(exc)
                if chips := gpio_chips(gpio_dev):
                    raise KioskError(
                        f"this machine has GPIO ({', '.join(c.name for c in chips)}) but no GPIO library could drive it "
                        f"({reasons}): install lgpio (Raspberry Pi) or Jetson.GPIO (Jetson), or set "
                        'door_hardware.pin_factory = "mock" to run on simulated pins (the door never opens)'
                    ) from None
                factory = _load_factory("mock")
                Device.pin_factory = factory
                log.warning(
                    "no GPIO hardware found (%s): using gpiozero's mock pins, so the door relay is simulated",
                    reasons,
                )
                return GpiozeroBoard(factory, f"gpiozero mock pins (no GPIO hardware found: {reasons})")
        Device.pin_factory = factory
        return GpiozeroBoard(factory, f"gpiozero {type(factory).__name__}")

    wanted = _load_factory_class(name)
    if isinstance(current, wanted):
        factory = current
    else:
        try:
            factory = wanted()
        except Exception as exc:
            raise KioskError(f"door_hardware.pin_factory = {name!r} cannot be used on this machine: {exc}") from None
        Device.pin_factory = factory
    if name == "mock":
        log.warning("door_hardware.pin_factory = 'mock': the door relay is simulated")
        return GpiozeroBoard(factory, "gpiozero mock pins (configured)")
    return GpiozeroBoard(factory, f"gpiozero {type(factory).__name__}")


def _load_factory_class(name: str) -> type:
    module_name, class_name = _GPIOZERO_FACTORIES[name].split(":")
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except ImportError as exc:
        raise KioskError(
            f"door_hardware.pin_factory = {name!r} needs a library that is not installed ({exc.name}): "
            f"install it, or choose another pin factory"
        ) from None


def _load_factory(name: str) -> Any:
    return _load_factory_class(name)()


# --- Jetson.GPIO ---------------------------------------------------------------------------


class _JetsonOutput(OutputLine):
    def __init__(self, gpio: ModuleType, pin: PinSpec, active_high: bool):
        self._gpio, self._pin = gpio, pin
        self._levels = {True: gpio.HIGH if active_high else gpio.LOW, False: gpio.LOW if active_high else gpio.HIGH}
        gpio.setup(pin, gpio.OUT, initial=self._levels[False])
        self._active = False
        self._released = False

    def write(self, active: bool) -> None:
        if self._released:  # released lines were left inactive; a late close is a no-op
            return
        self._gpio.output(self._pin, self._levels[active])
        self._active = active

    @property
    def active(self) -> bool:
        return self._active

    def release(self) -> None:
        if self._released:
            return
        self.write(False)
        self._gpio.cleanup(self._pin)
        self._released = True


class _JetsonInput(InputLine):
    def __init__(self, gpio: ModuleType, pin: PinSpec, pull: str, bounce_seconds: float, on_change: LevelCallback):
        self._gpio, self._pin = gpio, pin
        pulls = {"up": gpio.PUD_UP, "down": gpio.PUD_DOWN, "off": gpio.PUD_OFF}
        gpio.setup(pin, gpio.IN, pull_up_down=pulls[pull])
        bounce_ms = round(bounce_seconds * 1000)
        kwargs = {"bouncetime": bounce_ms} if bounce_ms > 0 else {}
        gpio.add_event_detect(pin, gpio.BOTH, callback=lambda _channel: on_change(self.high), **kwargs)

    @property
    def high(self) -> bool:
        return self._gpio.input(self._pin) == self._gpio.HIGH

    def release(self) -> None:
        self._gpio.remove_event_detect(self._pin)
        self._gpio.cleanup(self._pin)


class JetsonBoard(GpioBoard):
    def __init__(self, gpio: ModuleType, numbering: str):
        self._gpio = gpio
        gpio.setwarnings(False)
        try:
            gpio.setmode(getattr(gpio, numbering))
        except ValueError as exc:  # another part of the process chose a different numbering
            raise KioskError(f"Jetson.GPIO numbering {numbering}: {exc}") from None
        self.description = f"Jetson.GPIO ({numbering} numbering)"

    def output(self, pin: PinSpec, active_high: bool) -> OutputLine:
        try:
            return _JetsonOutput(self._gpio, pin, active_high)
        except (ValueError, RuntimeError) as exc:
            raise KioskError(f"Jetson GPIO output pin {pin!r} cannot be used: {exc}") from None

    def input(self, pin: PinSpec, pull: str, bounce_seconds: float, on_change: LevelCallback) -> InputLine:
        try:
            return _JetsonInput(self._gpio, pin, pull, bounce_seconds, on_change)
        except (ValueError, RuntimeError) as exc:
            raise KioskError(f"Jetson GPIO input pin {pin!r} cannot be used: {exc}") from None


def _jetson_gpio() -> ModuleType:
    try:
        return importlib.import_module("Jetson.GPIO")
    except ImportError:
        raise KioskError(
            "this board needs Jetson.GPIO, which is not installed: install the Jetson.GPIO package "
            "(and add the service user to the gpio group), or set door_hardware.pin_factory = \"mock\""
        ) from None


def is_jetson() -> bool:
    """NVIDIA's device tree names the module ("NVIDIA Jetson Orin Nano ...")."""
    for path in _JETSON_MODEL_FILES:
        try:
            model = path.read_bytes()
        except OSError:
            continue
        if b"NVIDIA" in model or b"Jetson" in model:
            return True
    return False


def open_board(config: DoorHardwareConfig, gpio_dev: Path = GPIO_DEV) -> GpioBoard:
    """The GPIO backend `door_hardware.pin_factory` asks for (see the module docstring for auto).

    ``gpio_dev`` is where GPIO chips are looked for (tests point it at a folder of their own).
    """
    name = config.pin_factory
    if name == "jetson" or (name == "auto" and is_jetson()):
        return JetsonBoard(_jetson_gpio(), config.jetson_numbering)
    return _gpiozero_board(name, gpio_dev)
