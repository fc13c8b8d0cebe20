"""The door display greets whom the recogniser lets in, refuses plainly, and goes back to idle.

A stand-in for the door loop (only the camera is missing here) recognises real held-back
photos with the trained face model and tells the display, as the door service's listeners
are told: DoorDecisions, on the loop's own thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import timezone
from pathlib import Path

import pytest
from conftest import STRANGERS, copy_home, make_settings, photos
from textual.widgets import Static
from ui_home import NOW, PHOTOS_EACH, base_home, demo_people, fixed_clock, wait_until

from kiosk.context import KioskContext
from kiosk.door.status import DoorDecision, DoorStatus
from kiosk.recognition.base import FaceCrops
from kiosk.recognition.selection import load_recogniser
from kiosk.ui.door_display import DoorDisplayApp
from kiosk.vision.face_detection import primary_face
from kiosk.vision.images import read_image


class RecognisingDoor:
    """Plays the door loop: each photo handed to ``show`` is recognised and announced."""

    def __init__(self, ctx: KioskContext, threshold: float = 0.8):
        self.ctx = ctx
        self.model = load_recogniser(ctx).recogniser
        self.threshold = threshold
        self.listeners: list[Callable[[DoorDecision], None]] = []
        self.photos: list[Path] = []
        self.decided = 0  # photos fully handled (announced, or no face): the test waits on this
        self.granted = 0
        self.wake = threading.Event()
        self.fail_with: Exception | None = None

    def add_listener(self, callback: Callable[[DoorDecision], None]) -> None:
        self.listeners.append(callback)

    def status(self) -> DoorStatus:
        return DoorStatus("front", "closed", "ok", 15.0, "face", 1, self.threshold, NOW.timestamp(), 4242)

    def show(self, photo: Path) -> None:
        self.photos.append(photo)
        self.wake.set()

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.wake.wait(0.05)
            self.wake.clear()
            if self.fail_with is not None:
                raise self.fail_with
            while self.photos:
                image = read_image(self.photos[0])
                face = primary_face(self.ctx.detector.detect(image).faces, image.shape)
                if face is None:
                    self.photos.pop(0)
                    self.decided += 1
                    continue
                p = self.model.predict([FaceCrops(image, face.keypoints)])[0]
                granted = p.probability >= self.threshold
                decision = DoorDecision(NOW, p.person if granted else None, p.probability, granted, "recognised" if granted else "below threshold")
                for listener in self.listeners:
                    listener(decision)
                self.granted += granted
                self.photos.pop(0)
                self.decided += 1


@pytest.fixture(scope="module")
def door_ctx(tmp_path_factory: pytest.TempPathFactory, detector, embedder) -> KioskContext:
    home = copy_home(base_home(tmp_path_factory, detector, embedder), tmp_path_factory.mktemp("door-display") / "home")
    ctx = KioskContext(make_settings(home))
    ctx.__dict__["detector"] = detector
    ctx.__dict__["embedder"] = embedder
    return ctx


def message_of(app: DoorDisplayApp) -> str:
    return str(app.query_one("#message", Static).render())


def test_door_display_greets_a_granted_person_and_refuses_a_stranger(door_ctx: KioskContext) -> None:
    asyncio.run(_greets(door_ctx))


async def _greets(ctx: KioskContext) -> None:
    door = RecognisingDoor(ctx)
    person = demo_people()[0]
    held_back = photos(person)[PHOTOS_EACH:]  # not enrolled
    stranger = sorted(p for p in STRANGERS.iterdir() if p.is_dir())[0]
    # The greeting lasts until the test ends it (show_idle is what its timer calls): nothing here
    # depends on how fast the machine announces a decision or redraws.
    app = DoorDisplayApp(door, clock=fixed_clock, tz=timezone.utc, greet_seconds=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        message = app.query_one("#message", Static)
        assert message_of(app) == "Please look at the camera" and message.has_class("idle")
        assert str(app.query_one("#status", Static).render()) == "door closed  |  camera ok  |  12:00"
        granted_seen = False
        for photo in held_back[:3]:  # the model need not know every photo; one greeting is enough
            shown = door.decided
            door.show(photo)
            await wait_until(pilot, lambda: door.decided > shown)
            if door.granted:
                await wait_until(pilot, lambda: message.has_class("granted"), what="the greeting")
                granted_seen = True
                break
        assert granted_seen, "none of three held-back photos of an enrolled person was let in"
        assert message_of(app) == f"Welcome\n\n{person.name.replace('_', ' ')}"
        assert app._back_to_idle is not None  # the greeting's timer is armed ...
        app._back_to_idle.stop()
        app.show_idle()  # ... and what it runs brings the idle prompt back
        assert message.has_class("idle")
        door.show(photos(stranger)[0])
        await wait_until(pilot, lambda: message.has_class("refused"), what="the refusal")
        assert message_of(app) == "Not recognised"


def test_door_display_exits_with_an_error_when_the_loop_dies(door_ctx: KioskContext) -> None:
    asyncio.run(_loop_dies(door_ctx))


async def _loop_dies(ctx: KioskContext) -> None:
    door = RecognisingDoor(ctx)
    app = DoorDisplayApp(door, clock=fixed_clock, tz=timezone.utc)
    async with app.run_test(size=(80, 24)) as pilot:
        door.fail_with = RuntimeError("camera exhausted")
        door.wake.set()
        await wait_until(pilot, lambda: app.return_code is not None, what="the app to exit")
    assert app.return_code == 1
