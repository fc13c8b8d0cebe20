"""Snapshots of every screen at 80x24 and at 120x40, kept as SVGs in tests/__snapshots__/.

Regenerate after a deliberate change with `pytest tests/test_ui_snapshots.py --snapshot-update`
and look at the SVGs before committing them. Everything shown is fixed: the demo home's
stored times, the app's clock, the time zone (UTC), and still sources (no live feed).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timezone
from pathlib import Path

import pytest
from conftest import copy_home, dev_people, photos
from sqlalchemy import update
from textual.widgets import Input
from ui_home import NOW, admin_app, base_home, demo_people, fixed_clock, sign_in, wait_until, write_door_status

from db.models import TrainingRun
from kiosk.door.status import DoorDecision, DoorStatus
from kiosk.ui.door_display import DoorDisplayApp
from kiosk.vision.images import read_image

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]


@pytest.fixture()
def home(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, detector, embedder) -> Path:
    home = copy_home(base_home(tmp_path_factory, detector, embedder), tmp_path / "home")
    write_door_status(home)
    return home


async def still(pilot) -> None:
    """Steady cursors (a blinking one would make the picture depend on timing), then settle."""
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()


def opened(key: str, mode: str, then: Callable | None = None):
    """A run_before that signs in, switches to a screen and lets its first load finish."""

    async def run_before(pilot) -> None:
        await sign_in(pilot)
        if key:
            await pilot.press(key)
            await wait_until(pilot, lambda: pilot.app.current_mode == mode)
        await pilot.pause()
        if then is not None:
            await then(pilot)
        await still(pilot)

    return run_before


@pytest.mark.parametrize("size", SIZES)
def test_sign_in(snap_compare, home: Path, detector, embedder, size) -> None:
    async def wrong_pin(pilot) -> None:
        await wait_until(pilot, lambda: pilot.app.screen.query("#pin"))
        await pilot.press(*"1357", "enter")
        await wait_until(pilot, lambda: "wrong user name or PIN" in str(pilot.app.screen.query_one("#sign-in-message").render()))
        await still(pilot)

    assert snap_compare(admin_app(home, detector, embedder), terminal_size=size, run_before=wrong_pin)


@pytest.mark.parametrize("size", SIZES)
def test_door_screen(snap_compare, home: Path, detector, embedder, size) -> None:
    assert snap_compare(admin_app(home, detector, embedder), terminal_size=size, run_before=opened("", "door"))


@pytest.mark.parametrize("size", SIZES)
def test_people_screen(snap_compare, home: Path, detector, embedder, size) -> None:
    assert snap_compare(admin_app(home, detector, embedder), terminal_size=size, run_before=opened("f2", "people"))


@pytest.mark.parametrize("size", SIZES)
def test_samples(snap_compare, home: Path, detector, embedder, size) -> None:
    async def samples(pilot) -> None:
        await pilot.press("s")
        await wait_until(pilot, lambda: len(pilot.app.screen.query(".sample")) == 4)

    assert snap_compare(admin_app(home, detector, embedder), terminal_size=size, run_before=opened("f2", "people", samples))


@pytest.mark.parametrize("size", SIZES)
def test_enrol_files(snap_compare, home: Path, detector, embedder, size, monkeypatch: pytest.MonkeyPatch) -> None:
    newcomer = dev_people()[5]
    # Relative paths typed from the data folder: the picture must not depend on where the checkout lives.
    monkeypatch.chdir(newcomer.parent.parent)

    async def enrol(pilot) -> None:
        await pilot.press("e")
        await wait_until(pilot, lambda: pilot.app.screen.query("#enrol-name"))
        screen = pilot.app.screen
        screen.query_one("#enrol-name", Input).value = "Newcomer"
        files = [*photos(newcomer)[:2], photos(demo_people()[0])[0], newcomer / "missing.jpg"]
        screen.query_one("#enrol-paths", Input).value = " ".join(str(f.relative_to(Path.cwd())) for f in files)
        screen.query_one("#enrol-paths", Input).focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: "door picks it up" in str(screen.query_one("#enrol-summary").render()))

    assert snap_compare(admin_app(home, detector, embedder), terminal_size=size, run_before=opened("f2", "people", enrol))


@pytest.mark.parametrize("size", SIZES)
def test_camera_enrol(snap_compare, home: Path, detector, embedder, size) -> None:
    frames = [read_image(p) for p in photos(dev_people()[7])]
    served: list[int] = []

    def camera(_home: Path, count: int, _timeout: float) -> list:
        """The door service's handover, replaying photos in order (deterministic)."""
        start = len(served)
        served.extend(range(start, start + count))
        return [frames[i % len(frames)] for i in range(start, start + count)]

    async def capture(pilot) -> None:
        await pilot.press("c")
        await wait_until(pilot, lambda: pilot.app.screen.query("#camera-name"))
        await pilot.press(*"Visitor", "enter")
        await wait_until(pilot, lambda: "door picks it up" in str(pilot.app.screen.query_one("#camera-summary").render()))

    app = admin_app(home, detector, embedder, frame_source=camera)
    assert snap_compare(app, terminal_size=size, run_before=opened("f2", "people", capture))


@pytest.mark.parametrize("size", SIZES)
def test_retrain_screen(snap_compare, home: Path, detector, embedder, size) -> None:
    async def retrain(pilot) -> None:
        screen = pilot.app.screen
        await pilot.press("s")
        # the retrain runs in its own process: its start-up counts against the wait
        await wait_until(pilot, lambda: not screen.running and "done" in str(screen.query_one("#retrain-stage").render()), timeout=300)
        with pilot.app.kiosk.sessions.begin() as session:  # the new version's real finish time, fixed for the snapshot
            session.execute(update(TrainingRun).values(finished_at=NOW))
        screen.show_in_force()
        await wait_until(pilot, lambda: "2025-03-04" in str(screen.query_one("#in-force").render()))

    assert snap_compare(admin_app(home, detector, embedder), terminal_size=size, run_before=opened("f3", "retrain", retrain))


@pytest.mark.parametrize("size", SIZES)
def test_audit_screen(snap_compare, home: Path, detector, embedder, size) -> None:
    assert snap_compare(admin_app(home, detector, embedder), terminal_size=size, run_before=opened("f4", "audit"))


@pytest.mark.parametrize("size", SIZES)
def test_admin_log(snap_compare, home: Path, detector, embedder, size) -> None:
    async def admin_log(pilot) -> None:
        await pilot.press("l")
        await wait_until(pilot, lambda: "admin actions" in str(pilot.app.screen.query_one("#audit-page").render()))

    assert snap_compare(admin_app(home, detector, embedder), terminal_size=size, run_before=opened("f4", "audit", admin_log))


@pytest.mark.parametrize("size", SIZES)
def test_calibration_screen(snap_compare, home: Path, detector, embedder, size) -> None:
    async def preview(pilot) -> None:
        pilot.app.screen.query_one("#new-threshold").focus()
        await pilot.press(*"0.9")

    assert snap_compare(admin_app(home, detector, embedder), terminal_size=size, run_before=opened("f5", "calibration", preview))


class StillDoor:
    """A door loop that announces one decision and then idles: a still source for snapshots."""

    def __init__(self, decision: DoorDecision | None):
        self.decision = decision
        self.listeners: list[Callable[[DoorDecision], None]] = []

    def add_listener(self, callback: Callable[[DoorDecision], None]) -> None:
        self.listeners.append(callback)

    def status(self) -> DoorStatus:
        return DoorStatus("front", "closed", "ok", 15.0, "face", 1, 0.8, NOW.timestamp(), 4242)

    def run(self, stop: threading.Event) -> None:
        if self.decision is not None:
            for listener in self.listeners:
                listener(self.decision)
        stop.wait()


DECISIONS = {
    "idle": None,
    "granted": DoorDecision(NOW, "Ada Lovelace", 0.97, True, "recognised"),
    "refused": DoorDecision(NOW, None, 0.31, False, "below threshold"),
}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("state", list(DECISIONS))
def test_door_display(snap_compare, state: str, size) -> None:
    app = DoorDisplayApp(StillDoor(DECISIONS[state]), clock=fixed_clock, tz=timezone.utc, greet_seconds=60)

    async def settle(pilot) -> None:
        wanted = "idle" if DECISIONS[state] is None else state
        await wait_until(pilot, lambda: pilot.app.query_one("#message").has_class(wanted))
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=settle)
