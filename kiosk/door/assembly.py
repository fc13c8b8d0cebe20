"""The door's factory: camera, relay, sensors and recogniser built from the settings, then run.

`kiosk run`, the door display and the demo all start the door through here, so they run the
same service with the same fail-secure handling. Fail-secure on every way out: the relay is
closed at start-up, when the loop ends, on an exception, and on SIGTERM/SIGHUP (systemd's
stop; the relay's own handler closes it first).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from kiosk.config import Settings
    from kiosk.context import KioskContext
    from kiosk.door.gpio_board import GpioBoard
    from kiosk.door.outputs import DoorOutput
    from kiosk.door.relay import DoorRelay
    from kiosk.door.service import DoorService
    from kiosk.integrations.mqtt_client import MqttBridge
    from kiosk.site.link import SiteLink


@dataclass
class RunOptions:
    camera: str | None = None
    hold: int | None = None
    gap: int | None = None
    fps: float | None = None
    repeat: int = 1


@dataclass
class Door:
    """A built service with the hardware it owns, so the caller can always release it."""

    service: DoorService
    relay: DoorRelay
    tally: Counter[str] = field(default_factory=Counter)
    site: SiteLink | None = None  # a door of a site: replica follower and event uploader
    outputs: list[DoorOutput] = field(default_factory=list)
    mqtt: MqttBridge | None = None

    def shutdown(self) -> None:
        if self.site is not None:
            self.site.stop()
        for output in self.outputs:
            output.close()
        self.relay.shutdown()
        if self.mqtt is not None:  # after the relay: unsent events are published, then "offline"
            self.mqtt.stop()


def start_door(kiosk: KioskContext, options: RunOptions) -> Door:
    """Camera, relay, sensors and recogniser from the configuration plus command-line overrides."""
    from kiosk.door.gpio_board import open_board
    from kiosk.door.relay import build_relay
    from kiosk.door.sensors import build_sensors
    from kiosk.door.service import build_door_service
    from kiosk.vision.camera import ReplaySource, ResilientCamera, camera_source

    settings = kiosk.settings
    site = _join_site(kiosk)
    updates = {k: v for k, v in (("hold_frames", options.hold), ("gap_frames", options.gap), ("replay_fps", options.fps)) if v is not None}
    if options.camera is not None:
        updates["source"] = options.camera
    camera_config = settings.camera.model_copy(update=updates)
    source = camera_source(camera_config.source, camera_config)
    if options.repeat > 1 and isinstance(source, ReplaySource):
        source = ReplaySource.from_path(Path(camera_config.source), camera_config, options.repeat)
    hardware = settings.door_hardware
    board = open_board(hardware)
    relay = build_relay(hardware, board)
    outputs: list[DoorOutput] = []
    try:
        outputs = build_outputs(settings, relay, board)
        needs_sensors = hardware.contact_pin is not None or hardware.exit_pin is not None
        service = build_door_service(
            kiosk,
            camera=ResilientCamera(source, camera_config),
            relay=relay,
            sensors=(lambda on_event: build_sensors(hardware, relay, on_event, board)) if needs_sensors else None,
            outputs=outputs,
        )
        bridge = None
        if settings.mqtt.enabled:  # issue 17: events out and signed commands in over MQTT
            from kiosk.integrations.mqtt_client import MqttBridge

            bridge = MqttBridge(settings, kiosk.sessions)
            bridge.attach(service)
            bridge.start()
    except BaseException:
        for output in outputs:
            output.close()
        relay.shutdown()
        if site is not None:
            site.stop()
        raise
    if site is not None:
        service.add_listener(site.wake)
        site.start()
    return Door(service, relay, site=site, outputs=outputs, mqtt=bridge)


def _join_site(kiosk: KioskContext) -> SiteLink | None:
    """A door of a site (site.url set) catches its replica up before loading its model."""
    if not kiosk.settings.site.url:
        return None
    from kiosk.site.link import SiteLink

    link = SiteLink(kiosk.settings, kiosk.sessions)
    link.catch_up()
    return link


def build_outputs(settings: Settings, relay: DoorRelay, board: GpioBoard) -> list[DoorOutput]:
    """The outputs `door_hardware.outputs` names (the relay output only when listed); on a failure
    the ones already built are closed."""
    from kiosk.door.outputs import RelayOutput

    outputs: list[DoorOutput] = []
    try:
        for name in settings.door_hardware.outputs:
            if name == "relay":
                outputs.append(RelayOutput(relay, settings.door_hardware.pulse_seconds))
            elif name == "wiegand":
                from kiosk.door.wiegand import build_wiegand

                outputs.append(build_wiegand(settings.wiegand, board))
            else:
                from kiosk.door.osdp_reader import build_osdp

                outputs.append(build_osdp(settings, relay))
    except BaseException:
        for output in outputs:
            output.close()
        raise
    log.info("door outputs: %s", ", ".join(o.name for o in outputs))
    return outputs


def run_door(door: Door, stop: threading.Event) -> None:
    """Run until stopped; SIGTERM and SIGHUP close the relay at once and then stop the loop."""
    from kiosk.door.relay import close_on_signals

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, request_stop)
        close_on_signals(door.relay)  # runs first, then chains to request_stop
    try:
        door.service.run(stop)
    finally:
        door.shutdown()
