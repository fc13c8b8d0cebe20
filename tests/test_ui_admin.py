"""The admin app driven with Textual's Pilot against real SQLite files, real models and photos."""

from __future__ import annotations

import asyncio
import csv
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from textual.widgets import DataTable, Input, Static

from conftest import DEV, copy_home, dev_people, make_settings, photos
from db.models import AccessEvent, AdminAction, AdminCredential, FaceSample, Person, TrainingRun
from db.session import make_engine, session_factory
from kiosk.frame_handover import FrameHandover
from kiosk.images import read_image
from kiosk.threshold_override import threshold_in_force
from kiosk.ui.camera_enrol_screen import GOOD_FRAMES, CameraEnrolScreen
from kiosk.ui.enrol_files_screen import EnrolFilesScreen
from kiosk.ui.people_screen import ConfirmRemoveScreen, SamplesScreen
from ui_home import NOW, PIN, admin_app, build_home, demo_people, sign_in, wait_until, write_door_status


@pytest.fixture(scope="session")
def ui_base(tmp_path_factory: pytest.TempPathFactory, detector, embedder) -> Path:
    return build_home(tmp_path_factory.mktemp("ui-base") / "home", detector, embedder)


@pytest.fixture()
def home(ui_base: Path, tmp_path: Path) -> Path:
    return copy_home(ui_base, tmp_path / "home")


def table_text(table: DataTable) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def text_of(widget: Static) -> str:
    return str(widget.render())


def test_sign_in_wrong_then_right_pin(home: Path, detector, embedder) -> None:
    asyncio.run(_sign_in_wrong_then_right_pin(home, detector, embedder))


async def _sign_in_wrong_then_right_pin(home: Path, detector, embedder) -> None:
    app = admin_app(home, detector, embedder)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.screen.query("#pin"))
        await pilot.press(*"1357", "enter")
        message = app.screen.query_one("#sign-in-message", Static)
        await wait_until(pilot, lambda: "wrong PIN" in text_of(message), what="the refusal")
        assert "2 more tries" in text_of(message)
        assert app.admin is None
        await pilot.press("f2")  # screens stay shut before sign-in
        assert app.screen.query("#pin")
        await pilot.press(*PIN, "enter")
        await wait_until(pilot, lambda: app.admin == "admin", what="sign-in")
        await wait_until(pilot, lambda: app.current_mode == "door")
    with session_factory(make_engine(make_settings(home).database_url))() as session:
        cred = session.scalars(select(AdminCredential)).one()
        actions = [a.action for a in session.scalars(select(AdminAction).where(AdminAction.subject == "admin").order_by(AdminAction.id))]
    assert cred.failed_attempts == 0 and cred.locked_until is None
    assert PIN not in cred.secret_hash and cred.secret_hash.startswith("$argon2")
    assert actions[-2:] == ["sign-in-failed", "sign-in"]


def test_door_screen_follows_events_written_by_another_connection(home: Path, detector, embedder) -> None:
    asyncio.run(_door_screen_follows_events_written_by_another_connection(home, detector, embedder))


async def _door_screen_follows_events_written_by_another_connection(home: Path, detector, embedder) -> None:
    """The door service writes through its own engine while the admin app polls the same file."""
    write_door_status(home, updated=NOW.timestamp() - 2)
    app = admin_app(home, detector, embedder, poll_seconds=0.05)
    written: list[int] = []
    errors: list[BaseException] = []

    def door_service() -> None:
        sessions = session_factory(make_engine(make_settings(home).database_url))
        try:
            for i in range(40):
                with sessions.begin() as session:
                    event = AccessEvent(time=NOW + timedelta(seconds=i), door="front", person_name=None, granted=False, probability=0.1, reason=f"writer {i}", recogniser="face", model_version=1)
                    session.add(event)
                    session.flush()
                    written.append(event.id)
                time.sleep(0.01)
        except BaseException as exc:  # reported by the test below
            errors.append(exc)

    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot)
        status = app.screen.query_one("#door-status", Static)
        await wait_until(pilot, lambda: "14.8 fps" in text_of(status), what="the service status")
        assert "running (pid 4242, status 2 s old)" in text_of(status)
        assert "face v1" in text_of(status) and "0.800" in text_of(status)
        writer = threading.Thread(target=door_service)
        writer.start()
        while writer.is_alive():
            await pilot.pause(0.02)
        writer.join()
        assert not errors, errors
        feed = app.screen.query_one("#feed", DataTable)
        await wait_until(pilot, lambda: feed.row_count and feed.coordinate_to_cell_key((0, 0)).row_key.value == str(written[-1]), what="the newest event at the top")
        assert table_text(feed)[0][4] == "writer 39"
