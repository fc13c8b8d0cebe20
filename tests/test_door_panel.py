"""The door as a reader on an access panel: real photos, real models, a real libosdp panel over a pty,
Wiegand on gpiozero's mock pins. The kiosk never drives its own lock here; the panel decides."""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import STRANGERS, copy_home, dev_people, make_settings, photos
from osdp import KeyStore
from osdp_panel import TestPanel, card_bits, pty_pair
from sqlalchemy import select
from test_door_service import events, replay_dir
from test_wiegand import decode

from db.audit_chain import verify_all
from db.models import AdminAction
from kiosk.config import (
    CameraConfig,
    CredentialsConfig,
    DetectionConfig,
    DoorHardwareConfig,
    ModelPaths,
    OsdpConfig,
    PolicyConfig,
    Settings,
    WiegandConfig,
)
from kiosk.context import KioskContext
from kiosk.door.gpio_board import open_board
from kiosk.door.osdp_reader import OsdpReader, SerialChannel, build_osdp, load_scbk
from kiosk.door.outputs import PanelNotice
from kiosk.door.relay import DoorRelay, build_relay
from kiosk.door.service import build_door_service
from kiosk.door.status import DoorDecision, read_status
from kiosk.door.wiegand import WiegandOutput, build_wiegand, frame_bits
from kiosk.errors import ConfigError
from kiosk.storage.credentials import Card, set_card
from kiosk.vision.camera import Frame, ReplaySource, ResilientCamera
from kiosk.vision.face_detection import FaceDetector
from kiosk.vision.images import read_image

WAIT = 60.0
RELAY_PIN, D0, D1 = 17, 23, 24


class HeldReplay(ReplaySource):
    """A replay of a quiet doorway until `go`, then the photos, then quiet again until `release` ends it."""

    def __init__(self, *args, go: threading.Event, release: threading.Event, **kwargs):
        super().__init__(*args, **kwargs)
        self.go, self.release = go, release

    @property
    def exhausted(self) -> bool:
        return self._next >= self._total and self.release.is_set()

    def read(self) -> Frame | None:
        return None if self._next >= self._total or not self.go.is_set() else super().read()


@dataclass
class PanelWiring:
    """The kiosk's outputs on a pty to a test panel, as `kiosk run` wires them, and the panel once connected."""

    master: int
    relay: DoorRelay
    reader: OsdpReader
    wiegand: WiegandOutput | None
    panel: TestPanel | None = None

    def connect(self, key: bytes, **kwargs) -> TestPanel:  # type: ignore[no-untyped-def]
        self.panel = TestPanel(self.master, 1, key, **kwargs)
        return self.panel


@contextmanager
def panel_wiring(settings: Settings, key: bytes | None = None) -> Iterator[PanelWiring]:
    """Relay, OSDP reader (the given key, else the configured key file) and Wiegand if configured; all closed after."""
    master, slave, path = pty_pair()
    hardware = settings.door_hardware
    board = open_board(hardware)
    relay = build_relay(hardware, board)
    if key is None:
        settings.osdp.port = path
        reader = build_osdp(settings, relay)  # as `kiosk run` builds it
    else:
        reader = OsdpReader(SerialChannel(path, 115200), OsdpConfig(port=path, baud=115200, address=1), key)
    wiegand = build_wiegand(settings.wiegand, board) if "wiegand" in hardware.outputs else None
    wiring = PanelWiring(master, relay, reader, wiegand)
    try:
        yield wiring
    finally:
        if wiring.panel is not None:
            wiring.panel.close()
        reader.close()
        if wiegand is not None:
            wiegand.close()
        relay.shutdown()
        os.close(master)
        os.close(slave)


@pytest.fixture(scope="module")
def door_detector() -> FaceDetector:
    from conftest import DETECTOR

    return FaceDetector.from_settings(ModelPaths(detector=DETECTOR), DetectionConfig(pad_fraction=0.0))


def test_a_recognised_face_reaches_the_panel_and_the_panel_answers_on_the_display(enrolled_dev, tmp_path: Path, door_detector, embedder, pins) -> None:
    home = copy_home(enrolled_dev[0], tmp_path / "home")
    carded, uncarded = dev_people()[0], dev_people()[1]
    stranger = sorted(p for p in STRANGERS.iterdir() if p.is_dir())[0]
    hardware = DoorHardwareConfig(pin_factory="mock", relay_pin=RELAY_PIN, relay_active_high=True, outputs=["osdp", "wiegand"])
    settings = make_settings(
        home, door_hardware=hardware, wiegand=WiegandConfig(d0_pin=D0, d1_pin=D1),
        policy=PolicyConfig(window_frames=3, min_frames=2, track_max_missed=1),
    )
    ctx = KioskContext(settings)
    ctx.__dict__["embedder"] = embedder
    set_card(ctx.sessions, carded.name, Card(12, 345))

    key = KeyStore.gen_key()
    with panel_wiring(settings, key) as wiring:
        relay, reader, wiegand = wiring.relay, wiring.reader, wiring.wiegand
        for pin in (pins.pin(D0), pins.pin(D1)):
            pin.clear_states()
        bases = pins.pin(D0)._last_change, pins.pin(D1)._last_change
        links: queue.Queue[PanelNotice] = queue.Queue()
        reader.listen(links.put)
        shown = [(carded.name, f) for f in photos(carded)[12:15]] + [("stranger", photos(stranger)[0])] * 3 + [(uncarded.name, f) for f in photos(uncarded)[12:15]]
        go, release = threading.Event(), threading.Event()
        folder = replay_dir(tmp_path, shown)
        source = HeldReplay(sorted(folder.iterdir()), folder, hold=3, gap=2, go=go, release=release)
        service = build_door_service(ctx, ResilientCamera(source, CameraConfig(stall_seconds=600)), relay, detector=door_detector, outputs=[reader, wiegand])
        heard: queue.Queue[DoorDecision] = queue.Queue()
        service.add_listener(heard.put)
        runner = threading.Thread(target=service.run, args=(threading.Event(),))
        reader.start()  # what run() does first; done here so the panel below finds the reader answering
        panel = wiring.connect(key)
        runner.start()
        try:
            while not links.get(timeout=WAIT).granted:  # a slow handshake may be called refused before it is up
                pass
            go.set()
            event = panel.card_read(WAIT)
            assert event is not None and card_bits(event) == frame_bits(Card(12, 345), 26)
            panel.buzzer(1)
            panel.led("green")
            while (decision := heard.get(timeout=WAIT)).reason != "granted by the panel":
                pass
            assert decision.granted and decision.person == carded.name
        finally:
            release.set()
            runner.join(timeout=WAIT)
        assert not runner.is_alive()
        assert panel.card_read(1.0) is None  # the stranger sent nothing, nor did the person without a card
        assert "osdp: secure channel up" in read_status(home).panel

    rows = events(home)
    decisions = [e for e in rows if "door_event" not in e.details]
    assert [(e.person_name, e.granted) for e in decisions if e.granted] == [(carded.name, True), (uncarded.name, True)]
    assert any(not e.granted and e.person_name is None for e in decisions)  # the stranger, refused
    sent = [e for e in rows if e.details.get("door_event") == "panel-send"]
    assert [(e.person_name, e.granted, e.details["card"]) for e in sent] == [(carded.name, True, "12:345"), (uncarded.name, False, None)]
    assert sent[0].reason.startswith("sent to panel") and sent[0].details["grant_event"] == decisions[0].id
    assert sent[1].reason.startswith("NOT sent to panel") and "has no card number" in sent[1].reason
    answers = [e for e in rows if e.details.get("door_event") == "panel-answer"]
    assert [(e.person_name, e.granted, e.reason) for e in answers] == [(carded.name, True, "granted by the panel (osdp LED green, 1 beep)")]
    # the kiosk's own lock never moved; the panel got the same card on the Wiegand lines too
    assert service.stats.pulses == 0 and all(not s.state for s in pins.pin(RELAY_PIN).states)
    assert [bit for bit, _, _ in decode(pins.pin(D0), pins.pin(D1), *bases)] == frame_bits(Card(12, 345), 26)


def test_a_stranger_sends_the_unknown_face_card_once_per_visit(enrolled_dev, tmp_path: Path, door_detector, embedder, pins) -> None:
    home = copy_home(enrolled_dev[0], tmp_path / "home")
    carded, other = dev_people()[0], dev_people()[1]
    # two strangers each alone in their photo: a second face in the background would be a visit too
    strangers = [s for s in sorted(STRANGERS.iterdir()) if s.is_dir() and len(door_detector.detect(read_image(photos(s)[0])).faces) == 1][:2]
    hardware = DoorHardwareConfig(pin_factory="mock", relay_pin=RELAY_PIN, relay_active_high=True, outputs=["osdp", "wiegand"])
    settings = make_settings(
        home, door_hardware=hardware, wiegand=WiegandConfig(d0_pin=D0, d1_pin=D1),
        credentials=CredentialsConfig(unknown_face_card="9:999"),
        # every frame of a refused visit after the first refusal is a repeat refusal: logged, never sent again
        policy=PolicyConfig(window_frames=3, min_frames=2, track_max_missed=1, refusal_repeat_seconds=0.0),
    )
    ctx = KioskContext(settings)
    ctx.__dict__["embedder"] = embedder
    set_card(ctx.sessions, other.name, Card(9, 999))  # given before the setting: the door must not start
    key = KeyStore.gen_key()
    with panel_wiring(settings, key) as wiring:
        relay, reader, wiegand = wiring.relay, wiring.reader, wiring.wiegand
        shown = [(carded.name, photos(carded)[12]), ("stranger", photos(strangers[0])[0]), ("stranger", photos(strangers[1])[0])]
        go, release = threading.Event(), threading.Event()
        folder = replay_dir(tmp_path, shown)
        source = HeldReplay(sorted(folder.iterdir()), folder, hold=6, gap=2, go=go, release=release)
        with pytest.raises(ConfigError, match=f"is {other.name}'s card"):
            build_door_service(ctx, ResilientCamera(source, CameraConfig()), relay, detector=door_detector, outputs=[reader, wiegand])
        set_card(ctx.sessions, other.name, Card(9, 1000))
        set_card(ctx.sessions, carded.name, Card(12, 345))
        for pin in (pins.pin(D0), pins.pin(D1)):
            pin.clear_states()
        bases = pins.pin(D0)._last_change, pins.pin(D1)._last_change
        links: queue.Queue[PanelNotice] = queue.Queue()
        reader.listen(links.put)
        service = build_door_service(ctx, ResilientCamera(source, CameraConfig(stall_seconds=600)), relay, detector=door_detector, outputs=[reader, wiegand])
        runner = threading.Thread(target=service.run, args=(threading.Event(),))
        reader.start()
        panel = wiring.connect(key)
        runner.start()
        try:
            while not links.get(timeout=WAIT).granted:  # a slow handshake may be called refused before it is up
                pass
            go.set()
            reads = [panel.card_read(WAIT) for _ in range(3)]
        finally:
            release.set()
            runner.join(timeout=WAIT)
        assert not runner.is_alive()
        assert [card_bits(e) for e in reads if e is not None] == [frame_bits(c, 26) for c in (Card(12, 345), Card(9, 999), Card(9, 999))]
        assert panel.card_read(1.0) is None  # the repeat refusals of each visit sent nothing more

    rows = events(home)
    refusals = [e for e in rows if "door_event" not in e.details and not e.granted]
    first = [e for e in refusals if e.person_name is None and not e.details.get("repeat")]
    assert len(first) == 2 and len(refusals) > 2  # two visits, each refused again while it stayed
    unknown = [e for e in rows if e.details.get("door_event") == "panel-unknown"]
    assert [(e.person_name, e.granted, e.details["card"], e.details["refused_event"]) for e in unknown] == [
        (None, False, "9:999", first[0].id), (None, False, "9:999", first[1].id),
    ]
    assert all(e.reason.startswith("unknown-face card sent to panel: osdp card 9:999") for e in unknown)
    sent = [e for e in rows if e.details.get("door_event") == "panel-send"]
    assert [(e.person_name, e.details["card"]) for e in sent] == [(carded.name, "12:345")]
    bits = [bit for bit, _, _ in decode(pins.pin(D0), pins.pin(D1), *bases)]
    assert bits == frame_bits(Card(12, 345), 26) + frame_bits(Card(9, 999), 26) * 2  # the same on the Wiegand lines


def test_a_key_the_panel_sets_in_install_mode_is_an_admin_action(enrolled_dev, tmp_path: Path, door_detector, embedder, pins) -> None:
    home = copy_home(enrolled_dev[0], tmp_path / "home")
    key_file, new = tmp_path / "etc" / "osdp.key", KeyStore.gen_key()
    hardware = DoorHardwareConfig(pin_factory="mock", relay_pin=RELAY_PIN, relay_active_high=True, outputs=["osdp"])
    settings = make_settings(home, door_hardware=hardware, osdp=OsdpConfig(port="/dev/null", baud=115200, address=1, key_file=key_file, install_mode=True))  # port: panel_wiring's pty
    ctx = KioskContext(settings)
    ctx.__dict__["embedder"] = embedder
    with panel_wiring(settings) as wiring:  # no key file yet
        relay, reader = wiring.relay, wiring.reader
        heard: queue.Queue[PanelNotice] = queue.Queue()
        reader.listen(heard.put)
        folder = replay_dir(tmp_path, [("quiet", photos(dev_people()[0])[0])])
        source = HeldReplay(sorted(folder.iterdir()), folder, go=threading.Event(), release=threading.Event())  # nobody comes
        service = build_door_service(ctx, ResilientCamera(source, CameraConfig(stall_seconds=600)), relay, detector=door_detector, outputs=[reader])
        stop = threading.Event()
        runner = threading.Thread(target=service.run, args=(stop,))
        runner.start()
        try:
            wiring.connect(new, enforce=False)  # the panel installing this reader
            while (got := heard.get(timeout=WAIT)).kind != "key":
                pass
            assert got.granted
        finally:
            stop.set()
            runner.join(timeout=WAIT)
        assert not runner.is_alive()
    assert load_scbk(key_file, home) == new
    with ctx.sessions() as session:
        actions = list(session.scalars(select(AdminAction).where(AdminAction.action == "panel-key")))
    assert [(a.actor, a.details["saved"], a.details["install_mode"]) for a in actions] == [("osdp-panel", True, True)]
    assert str(key_file) in actions[0].details["detail"] and new.hex() not in actions[0].details["detail"]
    assert all(report.ok for report in verify_all(ctx.sessions))  # in the audit chain like any admin action
