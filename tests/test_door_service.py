"""The running door on replayed folders of real photos: real SCRFD and MobileFaceNet, a real
SQLite file, gpiozero's MockFactory pins. Only the camera's failures are simulated (no USB
camera here to unplug)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import DEV, REPO, STRANGERS, copy_home, dev_people, kiosk_env, make_settings, photos
from gpiozero.pins.mock import MockFactory
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from db.models import AccessEvent
from kiosk.clock import ManualClock
from kiosk.config import CameraConfig, DetectionConfig, DoorHardwareConfig, ModelPaths, PolicyConfig
from kiosk.context import KioskContext
from kiosk.door.gpio_board import open_board
from kiosk.door.relay import DoorRelay, build_relay
from kiosk.door.sensors import build_sensors
from kiosk.door.service import DoorService, build_door_service
from kiosk.door.status import read_status
from kiosk.training.retrain import retrain
from kiosk.vision.camera import CameraError, Frame, ReplaySource, ResilientCamera
from kiosk.vision.face_detection import FaceDetector
from kiosk.vision.images import read_image

RELAY_PIN, CONTACT_PIN = 17, 27


@pytest.fixture(scope="module")
def door_detector() -> FaceDetector:
    from conftest import DETECTOR

    return FaceDetector.from_settings(ModelPaths(detector=DETECTOR), DetectionConfig(pad_fraction=0.0))


@pytest.fixture()
def home(enrolled_dev, tmp_path: Path) -> Path:
    return copy_home(enrolled_dev[0], tmp_path / "home")


def replay_dir(tmp_path: Path, pictures: list[tuple[str, Path]], name: str = "replay") -> Path:
    """A folder of symlinks to real photos, named so they replay in the given order."""
    folder = tmp_path / name
    folder.mkdir()
    for i, (label, photo) in enumerate(pictures):
        (folder / f"{i:03d}-{label}-{photo.stem}.jpg").symlink_to(photo)
    return folder


REPLAY_FPS = 10.0


def build(
    home: Path, source, detector, embedder, pins: MockFactory, relay: DoorRelay | None = None, sensors=False,
    clock: ManualClock | None = None, **policy,
) -> DoorService:
    """The real door service on a stepped clock: the replay is paced at REPLAY_FPS (or its own fps) on it.

    Frames, not the machine's speed, measure time: pulses, cooldowns, refusal repeats and
    the held-open alarm fall on the same frames on any machine.
    """
    clock = clock or ManualClock()
    source.clock, source.fps = clock, source.fps or REPLAY_FPS
    hardware = DoorHardwareConfig(pin_factory="mock", relay_pin=RELAY_PIN, relay_active_high=True, pulse_seconds=policy.pop("pulse", 0.2),
                          contact_pin=CONTACT_PIN if sensors else None, input_pull="down", held_open_seconds=0.3)
    settings = make_settings(
        home,
        camera=CameraConfig(reconnect_initial_seconds=0.01, reconnect_max_seconds=0.05),
        # short windows keep the replays short: 2 of 3 frames, a visit over after 1 empty frame
        policy=PolicyConfig(**{"reload_check_seconds": 0.2, "window_frames": 3, "min_frames": 2, "track_max_missed": 1, **policy}),
        door_hardware=hardware,
    )
    ctx = KioskContext(settings)
    ctx.__dict__["embedder"] = embedder
    board = open_board(hardware)
    relay = relay or build_relay(hardware, board, clock)
    factory = (lambda on_event: build_sensors(hardware, relay, on_event, board, clock)) if sensors else None
    return build_door_service(ctx, ResilientCamera(source, settings.camera), relay, clock=clock, detector=detector, sensors=factory)


def events(home: Path) -> list[AccessEvent]:
    engine = create_engine(f"sqlite:///{home / 'kiosk.db'}")
    with Session(engine) as s:
        rows = list(s.scalars(select(AccessEvent).order_by(AccessEvent.id)))
    engine.dispose()
    return rows


def opened(pins: MockFactory) -> int:
    """How many times the relay pin went high."""
    return sum(1 for s in pins.pin(RELAY_PIN).states if s.state)


class CommitCheckingRelay(DoorRelay):
    """The real relay, asked at every pulse whether the grant is already committed (from another connection)."""

    def __init__(self, inner: DoorRelay, home: Path):
        self.inner, self.home = inner, home
        self.committed_at_pulse: list[bool] = []

    def pulse(self, seconds: float) -> None:
        self.committed_at_pulse.append(any(e.granted for e in events(self.home)[-1:]))
        self.inner.pulse(seconds)

    def close(self) -> None:
        self.inner.close()

    @property
    def is_open(self) -> bool:
        return self.inner.is_open

    def shutdown(self) -> None:
        self.inner.shutdown()


def test_enrolled_people_granted_strangers_refused_one_event_per_visit(home, tmp_path, door_detector, embedder, pins) -> None:
    people = dev_people()[:3]
    strangers = sorted(p for p in STRANGERS.iterdir() if p.is_dir())[:3]
    shown = [(p.name, f) for p in people for f in photos(p)[12:]] + [("stranger", photos(s)[0]) for s in strangers]
    source = ReplaySource.from_path(replay_dir(tmp_path, shown), CameraConfig(hold_frames=3, gap_frames=2))
    clock = ManualClock()
    inner = build_relay(DoorHardwareConfig(pin_factory="mock", relay_pin=RELAY_PIN, relay_active_high=True, pulse_seconds=0.2), clock=clock)
    relay = CommitCheckingRelay(inner, home)
    service = build(home, source, door_detector, embedder, pins, relay=relay, clock=clock)
    heard = []
    service.add_listener(heard.append)
    service.run(threading.Event())

    rows = events(home)
    grants = [e for e in rows if e.granted]
    # each person shows three held-back photos in a row: one grant each, the others fall in the cooldown
    assert sorted(e.person_name for e in grants) == sorted(p.name for p in people)
    for e in grants:
        assert e.details["frame"].split("-")[1] == e.person_name and e.model_version is not None
        assert e.probability >= 0.8 and e.person_id is not None
    stranger_events = [e for e in rows if "stranger" in e.details.get("frame", "")]
    assert stranger_events and not any(e.granted for e in stranger_events)
    assert {e.details["frame"] for e in stranger_events} >= {f"{i:03d}-stranger-1.jpg" for i in range(9, 12)}
    assert opened(pins) == len(grants) == service.stats.pulses
    assert relay.committed_at_pulse == [True] * len(grants)
    assert [d.person for d in heard] == [e.person_name for e in rows]
    assert not inner.is_open
    status = read_status(home)
    assert status is not None and status.camera == "exhausted" and status.door_state == "closed"


def test_a_person_standing_there_is_one_event_not_one_per_frame(home, tmp_path, door_detector, embedder, pins) -> None:
    person = dev_people()[3]
    stranger = sorted(p for p in STRANGERS.iterdir() if p.is_dir())[3]
    shown = [(person.name, photos(person)[12]), ("stranger", photos(stranger)[0])]
    source = ReplaySource.from_path(replay_dir(tmp_path, shown), CameraConfig(hold_frames=15, gap_frames=2))
    service = build(home, source, door_detector, embedder, pins)
    service.run(threading.Event())
    rows = events(home)
    assert service.stats.frames == 34
    by_frame = {}
    for e in rows:
        by_frame.setdefault(e.details["frame"].split("-")[1], []).append(e.granted)
    assert by_frame[person.name] == [True]
    assert by_frame["stranger"] and set(by_frame["stranger"]) == {False}
    assert len(by_frame["stranger"]) == len({e.track_id for e in rows if not e.granted})  # one per track
    assert service.policy.suppressed_refusals > 0


class VanishingCamera(ReplaySource):
    """A replay whose camera drops out after a few frames: reads fail, then reopening fails."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.outage = 0

    def read(self) -> Frame | None:
        if self._next == 8 and self.outage < 3:
            self.outage += 1
            raise CameraError("camera: /dev/video0 disconnected")
        return super().read()

    def open(self) -> None:
        if 0 < self.outage < 3:
            self.outage += 1
            raise CameraError("camera: cannot open /dev/video0")
        super().open()


def test_a_camera_that_vanishes_mid_run_is_survived(home, tmp_path, door_detector, embedder, pins, caplog) -> None:
    person = dev_people()[4]
    folder = replay_dir(tmp_path, [(person.name, photos(person)[12]), (person.name, photos(person)[13])])
    files = sorted(folder.iterdir())
    source = VanishingCamera(files, folder, hold=4, gap=2)
    service = build(home, source, door_detector, embedder, pins, cooldown_seconds=0.0)
    with caplog.at_level("WARNING"):
        service.run(threading.Event())
    assert service.camera.source.outage == 3
    assert "disconnected; retrying" in caplog.text and "camera back after" in caplog.text
    assert service.stats.frames == source.total_frames  # every frame after the outage was still seen
    grants = [e for e in events(home) if e.granted]
    assert {e.person_name for e in grants} == {person.name}
    assert grants[-1].details["frame"] == files[1].name  # recognised again on the far side of the outage


def test_an_exception_in_the_loop_leaves_the_relay_closed(home, tmp_path, door_detector, embedder, pins) -> None:
    person = dev_people()[5]
    source = ReplaySource.from_path(replay_dir(tmp_path, [(person.name, photos(person)[12])]), CameraConfig(hold_frames=30, gap_frames=0))
    service = build(home, source, door_detector, embedder, pins, pulse=60.0)
    real = service.selection.recogniser.predict
    calls = []

    def failing_predict(faces, top_k=5):
        calls.append(1)
        if service.relay.is_open and len(calls) > 6:
            raise RuntimeError("recogniser crashed")
        return real(faces, top_k)

    service.selection.recogniser.predict = failing_predict  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="recogniser crashed"):
        service.run(threading.Event())
    assert opened(pins) == 1  # the door was open (60 s pulse) when the loop crashed ...
    assert pins.pin(RELAY_PIN).state == 0  # ... and is shut now
    service.relay.shutdown()


class DoorPushedAt(ReplaySource):
    """A replay during which someone pushes the door open (while it is locked) at a given frame."""

    def __init__(self, *args, push_at: int, push, **kwargs):
        super().__init__(*args, **kwargs)
        self.push_at, self.push = push_at, push

    def read(self) -> Frame | None:
        if self._next == self.push_at:
            self.push()
        return super().read()


def test_door_contact_forced_and_held_open_alarms_are_logged(home, tmp_path, door_detector, embedder, pins) -> None:
    stranger = sorted(p for p in STRANGERS.iterdir() if p.is_dir())[0]
    folder = replay_dir(tmp_path, [("stranger", photos(stranger)[0])])
    source = DoorPushedAt(sorted(folder.iterdir()), folder, hold=20, push_at=3, push=lambda: pins.pin(CONTACT_PIN).drive_high())
    service = build(home, source, door_detector, embedder, pins, sensors=True)
    seen = []
    source_read = source.read

    def read_and_watch() -> Frame | None:
        frame = source_read()
        seen.append(service.status().door_state)
        return frame

    source.read = read_and_watch  # type: ignore[method-assign]
    service.run(threading.Event())
    assert seen[:3] == ["closed"] * 3 and set(seen[3:]) == {"forced"}  # held open too, but forced says more
    reasons = [e.reason for e in events(home) if e.details.get("door_event")]
    assert [r.split(":")[0] for r in reasons] == ["door forced", "door held-open"]
    assert opened(pins) == 0


def test_hot_reload_switches_to_a_new_model_without_stopping(home, tmp_path, door_detector, embedder, pins) -> None:
    person = dev_people()[6]
    source = ReplaySource([photos(person)[12]], person, hold=3, gap=2, repeat=100_000)
    service = build(home, source, door_detector, embedder, pins, cooldown_seconds=0.0)
    old = service.selection.recogniser.model_version
    stop = threading.Event()
    worker = threading.Thread(target=service.run, args=(stop,))
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while service.stats.grants < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        ctx = KioskContext(service.settings)
        ctx.__dict__["embedder"] = embedder
        new = retrain(ctx).runs["face"]
        frames_at_retrain = service.stats.frames
        deadline = time.monotonic() + 30
        while service.selection.recogniser.model_version != new and time.monotonic() < deadline:
            time.sleep(0.05)
        while not any(e.model_version == new for e in events(home)) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        worker.join(timeout=30)
    assert new != old and service.selection.recogniser.model_version == new and service.stats.reloads == 1
    assert service.stats.frames > frames_at_retrain
    versions = [e.model_version for e in events(home) if e.granted]
    assert versions[0] == old and versions[-1] == new


def test_a_flood_of_faces_drops_frames_instead_of_queueing(home, tmp_path, door_detector, embedder, pins) -> None:
    faces = [photos(p)[12] for p in dev_people()[:12]] + [photos(s)[0] for s in sorted(STRANGERS.iterdir())[:4]]
    tiles = [cv2.resize(cv2.imread(str(f)), (160, 160)) for f in faces]
    mosaic = np.vstack([np.hstack(tiles[r * 4:(r + 1) * 4]) for r in range(4)])
    folder = tmp_path / "flood"
    folder.mkdir()
    cv2.imwrite(str(folder / "crowd.jpg"), mosaic)
    fps, frames, cost = 100.0, 300, 0.025  # each crowded frame takes 25 ms of the camera's time: 2.5 frames
    clock = ManualClock()
    source = ReplaySource([folder / "crowd.jpg"], folder, hold=frames, gap=0, fps=fps)
    service = build(home, source, door_detector, embedder, pins, clock=clock, max_faces=10)
    recognise = service.selection.recogniser.predict_tracked

    def slow_recognise(crops, tracks, top_k=5):
        clock.advance(cost)
        return recognise(crops, tracks, top_k)

    service.selection.recogniser.predict_tracked = slow_recognise  # type: ignore[method-assign]
    started = clock.monotonic()
    service.run(threading.Event())
    took = clock.monotonic() - started
    stats = service.stats
    assert stats.dropped > 0 and stats.frames + stats.dropped == frames
    assert stats.frames == pytest.approx(frames / (cost * fps), abs=2)  # every third frame or so, not all 300 queued
    assert stats.skipped_faces > 0 and stats.faces == 10 * stats.frames
    # done when the camera's last frame was due (plus that frame's work), not 300 x 25 ms later
    assert took <= frames / fps + cost + 1e-6


def test_sigterm_closes_the_relay_and_exits_cleanly(enrolled_dev, tmp_path) -> None:
    home = copy_home(enrolled_dev[0], tmp_path / "home")
    person = dev_people()[7]
    folder = replay_dir(tmp_path, [(person.name, photos(person)[12])])
    proc = subprocess.Popen(
        [sys.executable, "-m", "kiosk", "-v", "run", "--camera", str(folder), "--hold", "100000"],
        env=kiosk_env(home) | {"KIOSK_DOOR_HARDWARE__PIN_FACTORY": "mock", "KIOSK_DOOR_HARDWARE__PULSE_SECONDS": "60"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )
    try:
        line = proc.stdout.readline()  # the first decision: the door is open for 60 s
        assert "GRANTED" in line and person.name in line
        status = read_status(home)
        deadline = time.monotonic() + 60  # a safety net only: the loop ends as soon as the status says open
        while (status is None or status.door_state != "open") and time.monotonic() < deadline:
            time.sleep(0.1)
            status = read_status(home)
        assert status is not None and status.door_state == "open"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "door relay closed and released" in err
    assert read_status(home).door_state == "closed"
    assert [e.person_name for e in events(home) if e.granted] == [person.name]


def test_kiosk_run_display_greets_a_granted_person_from_the_real_loop(home, tmp_path, door_detector, embedder, pins) -> None:
    """`kiosk run --display`'s pieces: the real door service under the door display app."""
    import asyncio

    from textual.widgets import Static

    from kiosk.ui.door_display import DoorDisplayApp

    name, photo = "Colin_Powell", photos(DEV / "Colin_Powell")[12]  # held back: not enrolled
    source = ReplaySource.from_path(replay_dir(tmp_path, [(name, photo)]), CameraConfig(hold_frames=200, gap_frames=0))
    service = build(home, source, door_detector, embedder, pins)
    app = DoorDisplayApp(service, greet_seconds=30.0)

    async def watch() -> str:
        async with app.run_test(size=(80, 24)) as pilot:
            for _ in range(300):
                text = str(app.query_one("#message", Static).render())
                if "Welcome" in text:
                    return text
                await pilot.pause(0.05)
            return text

    try:
        shown = asyncio.run(watch())
    finally:
        app.stop_event.set()
        service.relay.shutdown()
    assert shown == f"Welcome\n\n{name}"
    assert opened(pins) == 1


# --- hardening (issue 13): a track is one person -------------------------------------------------


def test_people_in_the_same_place_with_no_empty_frame_between_are_separate_visits(home, tmp_path, door_detector, embedder, pins) -> None:
    """Two enrolled people, then three strangers, each photo straight after the last (gap 0)."""
    people = dev_people()[8:10]
    alone = [s for s in sorted(STRANGERS.iterdir()) if s.is_dir() and len(door_detector.detect(read_image(photos(s)[0])).faces) == 1]
    strangers = alone[4:7]  # three strangers, each alone in their photo (a second face would be a visit too)
    shown = [(p.name, photos(p)[12]) for p in people] + [("stranger", photos(s)[0]) for s in strangers]
    source = ReplaySource.from_path(replay_dir(tmp_path, shown), CameraConfig(hold_frames=5, gap_frames=0))
    service = build(home, source, door_detector, embedder, pins)
    service.run(threading.Event())
    rows = events(home)
    grants = [e for e in rows if e.granted]
    refusals = [e for e in rows if not e.granted]
    assert [(e.person_name, e.details["frame"].split("-")[1]) for e in grants] == [(p.name, p.name) for p in people]
    assert len({e.track_id for e in grants}) == 2
    assert len(refusals) == 3 and {e.details["frame"].split("-")[1] for e in refusals} == {"stranger"}
    assert len({e.track_id for e in refusals}) == 3 and not {e.track_id for e in refusals} & {e.track_id for e in grants}
    assert opened(pins) == 2

